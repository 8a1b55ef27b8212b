# Installs the just-built dtd into PREFIX, then configures, builds and runs the consumer project against it.
execute_process(COMMAND ${CMAKE_COMMAND} --install ${DTD_BINARY_DIR} --prefix ${PREFIX} --component dev
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "install failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE} -B ${BUILD} "-DCMAKE_PREFIX_PATH=${PREFIX}"
                        "-DEigen3_DIR=${EIGEN_DIR}" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configure failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "build failed")
endif()
execute_process(COMMAND ${BUILD}/consumer RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "consumer failed")
endif()
