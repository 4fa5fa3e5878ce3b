#!/bin/sh
# cmocka unit tests of src/pgconn.c (password redaction), TAP output for prove.
cd "$(dirname "$0")/../.." || exit 1
CMOCKA_MESSAGE_OUTPUT=TAP exec "${UNIT_DIR:-build/unit}/test_pgconn"
