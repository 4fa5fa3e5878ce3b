#!/bin/sh
# cmocka unit tests of pgconn_find_transaction_control (src/pgconn.c: the
# BEGIN/COMMIT an up.sql must not hold) and pgconn_find_savepoint (ferry
# validate's own savepoints), TAP output for prove.
cd "$(dirname "$0")/../.." || exit 1
CMOCKA_MESSAGE_OUTPUT=TAP exec "${UNIT_DIR:-build/unit}/test_sqlscan"
