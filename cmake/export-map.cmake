# cmake -DOUT=FILE -DHEADERS="a.h;b.h" -P export-map.cmake: the linker version script of
# libnetdiffus. It exports every name with an underscore that the public headers hold:
# the functions and variables they declare (struct, type and field names among them
# match no symbol and do no harm); every other symbol stays local.
set(names)
foreach(h ${HEADERS})
  file(READ ${h} text)
  string(REGEX MATCHALL "[a-z][a-z0-9]*_[a-z0-9_]*" found "${text}")
  list(APPEND names ${found})
endforeach()
list(REMOVE_DUPLICATES names)
list(SORT names)
list(JOIN names ";\n    " names)
file(CONFIGURE OUTPUT ${OUT} CONTENT "{\n  global:\n    ${names};\n  local: *;\n};\n")
