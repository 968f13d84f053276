# version.cmake — regenerate dbi/version.h at build time (so --version follows the current
# commit), rewriting it only when its content changes. Reproducible: the build time is the
# commit time (or SOURCE_DATE_EPOCH), never the wall clock.
execute_process(COMMAND git describe --always --dirty --tags WORKING_DIRECTORY ${SRC_DIR}
  OUTPUT_VARIABLE DBI_GIT_VERSION OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT DBI_GIT_VERSION)
  set(DBI_GIT_VERSION "unknown")
endif()
if(DEFINED ENV{SOURCE_DATE_EPOCH})
  set(DBI_BUILD_EPOCH $ENV{SOURCE_DATE_EPOCH})
else()
  execute_process(COMMAND git log -1 --format=%ct WORKING_DIRECTORY ${SRC_DIR}
    OUTPUT_VARIABLE DBI_BUILD_EPOCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT DBI_BUILD_EPOCH)
    set(DBI_BUILD_EPOCH 0)
  endif()
endif()
configure_file(${SRC_DIR}/include/dbi/version.h.in ${DST}.tmp @ONLY)
file(COPY_FILE ${DST}.tmp ${DST} ONLY_IF_DIFFERENT)
file(REMOVE ${DST}.tmp)
