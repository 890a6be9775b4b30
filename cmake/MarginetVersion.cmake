# The git revision is written at build time (not configure time), so that
# `marginet --version` and every benchmark record name the revision that was built.
set(MARGINET_REVISION_CPP "${CMAKE_BINARY_DIR}/generated/revision.cpp")
add_custom_target(marginet_revision
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${CMAKE_SOURCE_DIR} -DOUTPUT=${MARGINET_REVISION_CPP}
          -P ${CMAKE_CURRENT_LIST_DIR}/WriteRevision.cmake
  BYPRODUCTS ${MARGINET_REVISION_CPP}
  COMMENT "Recording git revision")
# Configure-time value, for messages only.
execute_process(COMMAND git describe --always --dirty --abbrev=12
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} OUTPUT_VARIABLE MARGINET_GIT_REVISION
  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT MARGINET_GIT_REVISION)
  set(MARGINET_GIT_REVISION "unknown")
endif()
