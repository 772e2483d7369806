# ctest cpp_client_install_example (see anneal/client/CMakeLists.txt): installs
# the build into a fresh prefix, builds anneal/client/examples as a separate
# project with find_package(anneal) against that prefix only, and runs the
# example offline (nothing listens on port 1), checking its restarts.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
  set(ERR "${err}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
# The include tree is the public API only: the client, the model, the
# engine's public headers and the generated messages.
file(GLOB_RECURSE installed RELATIVE ${prefix}/include ${prefix}/include/*)
foreach(header IN LISTS installed)
  if(NOT header MATCHES "^anneal/(client|model|engine|v1)/[a-z_]+(\\.pb|\\.grpc\\.pb)?\\.h$")
    message(FATAL_ERROR "installed header outside the public API: ${header}")
  endif()
endforeach()
run(${CMAKE_COMMAND} -S ${EXAMPLE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
    -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -Danneal_DIR=${prefix}/lib/cmake/anneal)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/train_loop --server=127.0.0.1:1 --schedule=demo
    --steps=40 --spec_file=${EXAMPLE_DIR}/sgdr.json --connect_timeout_ms=300)
message(STATUS "train_loop:\n${OUT}${ERR}")
# sgdr.json: cycles of 2 + 10, 2 + 20, ... steps (a warmup in every cycle),
# so snapshots at 11 and 33, restarts at 12 and 34.
foreach(expected "step 11: snapshot" "step 12: restart" "step 33: snapshot"
        "step 34: restart" "40 steps, 40 offline")
  string(FIND "${OUT}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "train_loop output lacks '${expected}'")
  endif()
endforeach()
