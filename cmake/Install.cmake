# What `cmake --install` installs, and the Debian package of it (cpack -G DEB,
# scripts/package): the program, its man pages, the bash completion, the example configs,
# the documentation, and libnetdiffus (shared) with its headers and netdiffus.pc.
include(GNUInstallDirs)

# ---- the library ----------------------------------------------------------------------
# libnetdiffus.so: the module libraries whole, behind a version script that exports what
# their public headers declare (helpers the files of a module share stay local). The
# program and the tests keep linking the static module libraries.
set(ND_LIB_MODULES nd_base nd_conf nd_capture nd_nn nd_model nd_eval nd_live nd_replay)
set(ND_PUBLIC_HEADERS base/nd.h conf/conf.h capture/capture.h model/nn/nn.h model/model.h
    model/eval/eval.h live/live.h replay/replay.h)
set_target_properties(${ND_LIB_MODULES} PROPERTIES POSITION_INDEPENDENT_CODE ON)
# PIC alone would let a caller interpose any global function, which stops gcc inlining
# them inside a file; nothing interposes them (the program links the modules statically,
# the library exports only the headers' functions), so they keep the code of the PIE.
foreach(m ${ND_LIB_MODULES})
  target_compile_options(${m} PRIVATE -fno-semantic-interposition)
endforeach()
list(TRANSFORM ND_PUBLIC_HEADERS PREPEND ${PROJECT_SOURCE_DIR}/)
set(ND_EXPORT_MAP ${PROJECT_BINARY_DIR}/netdiffus.map)
add_custom_command(
  OUTPUT ${ND_EXPORT_MAP}
  COMMAND ${CMAKE_COMMAND} -DOUT=${ND_EXPORT_MAP} "-DHEADERS=${ND_PUBLIC_HEADERS}"
          -P ${PROJECT_SOURCE_DIR}/cmake/export-map.cmake
  DEPENDS ${ND_PUBLIC_HEADERS} ${PROJECT_SOURCE_DIR}/cmake/export-map.cmake
  COMMENT "Writing the export list of libnetdiffus" VERBATIM)
add_custom_target(nd_export_map DEPENDS ${ND_EXPORT_MAP})

list(TRANSFORM ND_LIB_MODULES REPLACE "(.+)" "$<TARGET_OBJECTS:\\1>" OUTPUT_VARIABLE _nd_objects)
add_library(netdiffus_lib SHARED ${_nd_objects})
# the modules' own dependencies (DPDK, libpcap, OpenBLAS...) come with them
target_link_libraries(netdiffus_lib PRIVATE ${ND_LIB_MODULES})
target_link_options(netdiffus_lib PRIVATE -Wl,--version-script=${ND_EXPORT_MAP} -Wl,--no-undefined)
set_target_properties(netdiffus_lib PROPERTIES OUTPUT_NAME netdiffus VERSION ${PROJECT_VERSION}
                      SOVERSION ${PROJECT_VERSION_MAJOR} LINK_DEPENDS ${ND_EXPORT_MAP})
add_dependencies(netdiffus_lib nd_export_map)

# ---- generated files: man pages, completion -------------------------------------------
find_program(HELP2MAN help2man)
if(NOT HELP2MAN)
  message(FATAL_ERROR "help2man not found: the man pages are made with it (scripts/setup "
                      "installs it)")
endif()
file(GLOB ND_MAN_INCLUDES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/*.h2m)
set(ND_MAN_DIR ${PROJECT_BINARY_DIR}/man)
add_custom_command(
  OUTPUT ${ND_MAN_DIR}/netdiffus.1.gz
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${ND_MAN_DIR}
  COMMAND ${PROJECT_SOURCE_DIR}/cmake/gen-man $<TARGET_FILE:netdiffus> ${PROJECT_VERSION}
          ${PROJECT_SOURCE_DIR}/docs/man ${ND_MAN_DIR}
  DEPENDS netdiffus ${PROJECT_SOURCE_DIR}/cmake/gen-man ${ND_MAN_INCLUDES}
  COMMENT "Writing the man pages (help2man)" VERBATIM)
add_custom_target(nd_man ALL DEPENDS ${ND_MAN_DIR}/netdiffus.1.gz)

set(ND_COMPLETION ${PROJECT_BINARY_DIR}/completion/netdiffus)
add_custom_command(
  OUTPUT ${ND_COMPLETION}
  COMMAND nd_gen_config_doc keys > ${PROJECT_BINARY_DIR}/completion/keys
  COMMAND nd_gen_completion ${PROJECT_BINARY_DIR}/completion/keys > ${ND_COMPLETION}
  DEPENDS nd_gen_config_doc nd_gen_completion
  COMMENT "Writing the bash completion")
add_custom_target(nd_completion ALL DEPENDS ${ND_COMPLETION})
file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/completion)

# ---- what is installed ----------------------------------------------------------------
install(TARGETS netdiffus RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS netdiffus_lib LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${ND_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/netdiffus)
# netdiffus.pc names the prefix given at install time (cmake --install --prefix P)
install(CODE "
  set(ND_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/cmake/netdiffus.pc.in\"
                 \"${PROJECT_BINARY_DIR}/pc/netdiffus.pc\" @ONLY)")
install(FILES ${PROJECT_BINARY_DIR}/pc/netdiffus.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(DIRECTORY ${ND_MAN_DIR}/ DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
        FILES_MATCHING PATTERN "*.1.gz" PATTERN bin EXCLUDE)
install(FILES ${ND_COMPLETION} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/conf/examples/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/netdiffus/examples)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/examples/read_ndd.c
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
file(GLOB ND_DOCS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${ND_DOCS} DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- the Debian package ---------------------------------------------------------------
set(CPACK_PACKAGE_NAME netdiffus)
set(CPACK_PACKAGE_CONTACT "netdiffus maintainers <netdiffus@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "capture network traffic, learn it with a diffusion model, regenerate it")
set(CPACK_PACKAGE_DESCRIPTION
    "netdiffus groups captured packets (DPDK, libpcap, pcap files) into flows and classes, \
learns each class's traffic over time with a diffusion model, and sends new timed, \
protocol-correct packets of the same kind to a pcap file, an interface or a DPDK port. \
The package holds the program, its man pages, bash completion, example configs, \
libnetdiffus with its headers and pkg-config file, and the Python module netdiffus \
that reads dataset and model files into numpy.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # netdiffus_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON) # Depends from the ELF files (dpkg-shlibdeps)
# what no ELF file names: the font the pictures' labels are drawn in (cairo finds it
# through fontconfig), and what the Python module imports
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fonts-dejavu-core")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3, python3-numpy")
# the -dev packages netdiffus.pc's Requires.private names, for `pkg-config --static`,
# are not required: a program links the shared library
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion, pkg-config")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
include(CPack)
