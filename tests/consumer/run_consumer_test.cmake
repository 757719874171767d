# Runs README.md's install commands exactly as written (the block after its
# "example: install" marker) in a scratch layout: HOME is WORK_DIR/home, the
# snakepit checkout is WORK_DIR/snakepit with `build` being BUILD_DIR, and
# ../my_app is a copy of the consumer project. Then runs what they built.
file(REMOVE_RECURSE "${WORK_DIR}")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# The README's block after `marker`, fenced as `language`.
function(readme_block marker language out_var)
  file(READ "${SOURCE_DIR}/README.md" readme)
  string(FIND "${readme}" "<!-- example: ${marker} " at)
  if(at EQUAL -1)
    message(FATAL_ERROR "README.md has no example marker '${marker}'")
  endif()
  string(SUBSTRING "${readme}" ${at} -1 readme)
  string(FIND "${readme}" "```${language}\n" start)
  string(LENGTH "```${language}\n" fence)
  math(EXPR start "${start} + ${fence}")
  string(SUBSTRING "${readme}" ${start} -1 readme)
  string(FIND "${readme}" "```" end)
  string(SUBSTRING "${readme}" 0 ${end} block)
  set(${out_var} "${block}" PARENT_SCOPE)
endfunction()

# The consumer project is what the README tells a user to write.
readme_block(consumer-cmake cmake cmake_lines)
file(READ "${CONSUMER_DIR}/CMakeLists.txt" consumer_cmake)
string(REPLACE "\n" ";" cmake_lines "${cmake_lines}")
foreach(line IN LISTS cmake_lines)
  string(FIND "${consumer_cmake}" "${line}" found)
  if(line AND found EQUAL -1)
    message(FATAL_ERROR "tests/consumer/CMakeLists.txt lacks the README's line: ${line}")
  endif()
endforeach()

set(home "${WORK_DIR}/home")
set(prefix "${home}/.local")
file(MAKE_DIRECTORY "${home}" "${WORK_DIR}/snakepit")
file(CREATE_LINK "${BUILD_DIR}" "${WORK_DIR}/snakepit/build" SYMBOLIC)
file(COPY "${CONSUMER_DIR}/" DESTINATION "${WORK_DIR}/my_app")
readme_block(install sh install_commands)
message(STATUS "README's install commands:\n${install_commands}")
execute_process(COMMAND ${CMAKE_COMMAND} -E env "HOME=${home}"
                  bash -euo pipefail -c "${install_commands}"
                WORKING_DIRECTORY "${WORK_DIR}/snakepit"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "README's install commands failed (${rc}):\n${out}\n${err}")
endif()
run("${WORK_DIR}/my_app/build/my_app")
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
# ... and names the installed Python package for an adapter author's PYTHONPATH.
run("${prefix}/bin/snakepit" python-path)
if(NOT last_output STREQUAL "${prefix}/share/snakepit/python\n")
  message(FATAL_ERROR "installed bin/snakepit python-path printed: ${last_output}")
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
