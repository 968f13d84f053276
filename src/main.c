/*
 * main.c — dbi-collector entry point (filled in as the runtime lands).
 */
#include <stdio.h>

#include "dbi/version.h"

int main(void)
{
	printf("dbi-collector %s (%s)\n", DBI_VERSION, DBI_GIT_VERSION);
	return 0;
}
