# Helpers that give every Kelpie target the same compile settings.
# Third-party headers are included as SYSTEM, so warnings-as-errors applies
# to our own code only.

set(KELPIE_WARNING_FLAGS -Wall -Wextra -Wpedantic -Werror -Wno-missing-field-initializers)

function(kelpie_target_defaults target)
  target_compile_options(${target} PRIVATE ${KELPIE_WARNING_FLAGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()

# kelpie_library(NAME SOURCES... [DEPS ...]): one static library per module.
function(kelpie_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  kelpie_target_defaults(${name})
  if(ARG_DEPS)
    target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  endif()
  if(ARG_PRIVATE_DEPS)
    target_link_libraries(${name} PRIVATE ${ARG_PRIVATE_DEPS})
  endif()
endfunction()

# kelpie_test(NAME LABEL SOURCES... DEPS ...): a GoogleTest binary registered
# with ctest under a label (unit, integration, e2e).
function(kelpie_test name)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  kelpie_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} kelpie_testing GTest::gtest_main GTest::gmock)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_LABEL STREQUAL "unit")
    add_dependencies(${name} kelpie)  # these tests run the real binary
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABEL}" TIMEOUT ${ARG_TIMEOUT})
endfunction()

# Adds every immediate subfolder of the current source folder that has a
# CMakeLists.txt, in alphabetical order, so modules register themselves by
# existing (and several areas can grow without editing a shared list).
function(kelpie_add_present_subdirectories)
  file(GLOB children LIST_DIRECTORIES true RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}
       ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT children)
  foreach(child ${children})
    if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/${child} AND
       EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${child}/CMakeLists.txt)
      add_subdirectory(${child})
    endif()
  endforeach()
endfunction()
