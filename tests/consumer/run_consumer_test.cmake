# Installs snakepit from BUILD_DIR into a scratch prefix, builds the consumer
# project against it with find_package(snakepit CONFIG) and runs it.
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
run(${CMAKE_COMMAND} -S "${CONSUMER_DIR}" -B "${WORK_DIR}/build"
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer")
message(STATUS "consumer said:\n${last_output}")
if(NOT last_output MATCHES "result=42")
  message(FATAL_ERROR "consumer did not print result=42")
endif()
if(NOT last_output MATCHES "package_dir=${prefix}/share/snakepit/python")
  message(FATAL_ERROR "consumer did not use the installed Python package")
endif()
# The installed command line runs from this non-system prefix (it finds its
# library through its RUNPATH) with the installed Python package.
run("${prefix}/bin/snakepit" call --tool add --args "{\"a\": 40, \"b\": 2}")
if(NOT last_output MATCHES "42")
  message(FATAL_ERROR "installed bin/snakepit did not print 42: ${last_output}")
endif()

# A program that links only snakepit::client (no CAF: see consumer_client/poison)
# calls a tree that the installed `snakepit run` serves.
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer_client" -B "${WORK_DIR}/client-build"
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/client-build")
file(WRITE "${WORK_DIR}/tree.toml" "[supervisors.app]
strategy = \"one_for_one\"
children = [\"showcase\"]

[pools.showcase]
adapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"
size = 1
")
run("${WORK_DIR}/client-build/client_consumer" "${prefix}/bin/snakepit" "${WORK_DIR}/tree.toml")
message(STATUS "client consumer said:\n${last_output}")
foreach(line "result=42" "error=unknown_tool" "pool=showcase" "streamed=3/3")
  if(NOT last_output MATCHES "${line}")
    message(FATAL_ERROR "the client consumer did not print ${line}")
  endif()
endforeach()
