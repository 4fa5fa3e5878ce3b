#!/bin/sh
# cmocka unit tests of src/rate.c, TAP output for prove.
cd "$(dirname "$0")/../.." || exit 1
CMOCKA_MESSAGE_OUTPUT=TAP exec "${UNIT_DIR:-build/unit}/test_rate"
