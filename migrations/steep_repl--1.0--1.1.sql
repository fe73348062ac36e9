-- steep_repl 1.0 -> 1.1. Every change to sql/*.sql since 1.0 is repeated here, in the order
-- it was made; tests/upgrade_test.go proves that 1.0 + this script equals a fresh 1.1 install.
\echo Use "ALTER EXTENSION steep_repl UPDATE TO '1.1'" to load this file. \quit
