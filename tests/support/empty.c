/* empty.c — keeps the test-support library non-empty before any helper lands. */
typedef int dbi_testsupport_empty;
