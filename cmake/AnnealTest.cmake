# anneal_add_test(NAME SOURCES file... LIBS target...): one GoogleTest binary
# registered with ctest. Unit tests live beside the code they test and link
# only their layer; cross-process tests live in tests/. Every test may read
# tests/data (ANNEAL_TEST_DATA_DIR) and start the built binaries
# (ANNEAL_BIN_DIR), which are built first.
include(GoogleTest)
function(anneal_add_test name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "SOURCES;LIBS")
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${ANNEAL_WARNINGS})
  target_compile_definitions(${name} PRIVATE
    ANNEAL_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data"
    ANNEAL_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock
    GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60)
endfunction()
