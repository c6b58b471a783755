#===- AddAtmoe.cmake - thin wrappers over add_mlir_* -----------*- cmake -*-===#

# add_atmoe_library(name srcs... [DEPENDS ...] [LINK_LIBS atmoe libs...]
#                   [MLIR_LIBS mlir libs...])
# A compiler library. MLIR libraries go through mlir_target_link_libraries so
# that, with MLIR_LINK_MLIR_DYLIB, everything links the one libMLIR.so.
function(add_atmoe_library name)
  cmake_parse_arguments(ARG "" "" "MLIR_LIBS;LINK_LIBS;DEPENDS" ${ARGN})
  add_mlir_library(${name} ${ARG_UNPARSED_ARGUMENTS}
    EXCLUDE_FROM_LIBMLIR DISABLE_INSTALL
    DEPENDS ${ARG_DEPENDS}
    LINK_LIBS PUBLIC ${ARG_LINK_LIBS})
  if(ARG_MLIR_LIBS)
    mlir_target_link_libraries(${name} PUBLIC ${ARG_MLIR_LIBS})
  endif()
endfunction()

# Generated markdown for one TableGen file, copied to build/docs by atmoe-doc.
function(add_atmoe_doc td_file output_file command)
  set(LLVM_TARGET_DEFINITIONS ${td_file}.td)
  mlir_tablegen(${output_file}.md ${command} ${ARGN})
  add_public_tablegen_target(${output_file}DocGen)
  add_custom_command(
    OUTPUT ${CMAKE_BINARY_DIR}/docs/${output_file}.md
    COMMAND ${CMAKE_COMMAND} -E copy
            ${CMAKE_CURRENT_BINARY_DIR}/${output_file}.md
            ${CMAKE_BINARY_DIR}/docs/${output_file}.md
    DEPENDS ${output_file}DocGen ${CMAKE_CURRENT_BINARY_DIR}/${output_file}.md)
  add_custom_target(${output_file}DocCopy
    DEPENDS ${CMAKE_BINARY_DIR}/docs/${output_file}.md)
  add_dependencies(atmoe-doc ${output_file}DocCopy)
endfunction()
