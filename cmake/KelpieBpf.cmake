# The eBPF build pipeline.
#
#   vmlinux.h   generated once per build tree from the running kernel's BTF
#   NAME.bpf.o  clang -O2 -g -target bpf (CO-RE relocations, BTF kept)
#   NAME.skel.h bpftool gen skeleton (embeds the object in the binary)
#
# kelpie_bpf_object(NAME SOURCE) defines an INTERFACE target `bpf_NAME` whose
# include path exposes "NAME.skel.h", and sets KELPIE_BPF_OBJECT_<NAME> in the
# parent scope to the object's path (tests read the object's BTF).

find_program(KELPIE_CLANG clang REQUIRED)
find_program(KELPIE_BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)

set(KELPIE_KERNEL_BTF "/sys/kernel/btf/vmlinux" CACHE FILEPATH
    "Kernel BTF used to generate vmlinux.h")
if(NOT EXISTS "${KELPIE_KERNEL_BTF}")
  message(FATAL_ERROR
    "Kernel BTF not found at ${KELPIE_KERNEL_BTF}. Kelpie's eBPF programs are "
    "built CO-RE against the kernel's BTF: use a kernel built with "
    "CONFIG_DEBUG_INFO_BTF=y, or point -DKELPIE_KERNEL_BTF= at a BTF file.")
endif()

set(KELPIE_BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf-gen)
file(MAKE_DIRECTORY ${KELPIE_BPF_GEN_DIR})

add_custom_command(
  OUTPUT ${KELPIE_BPF_GEN_DIR}/vmlinux.h
  COMMAND ${KELPIE_BPFTOOL} btf dump file ${KELPIE_KERNEL_BTF} format c
          > ${KELPIE_BPF_GEN_DIR}/vmlinux.h.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${KELPIE_BPF_GEN_DIR}/vmlinux.h.tmp
          ${KELPIE_BPF_GEN_DIR}/vmlinux.h
  COMMENT "Generating vmlinux.h from ${KELPIE_KERNEL_BTF}"
  VERBATIM)
add_custom_target(kelpie_vmlinux_h DEPENDS ${KELPIE_BPF_GEN_DIR}/vmlinux.h)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(KELPIE_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(KELPIE_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "Unsupported architecture for eBPF: ${CMAKE_SYSTEM_PROCESSOR}")
endif()

function(kelpie_bpf_object name source)
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${source})
  set(obj ${KELPIE_BPF_GEN_DIR}/${name}.bpf.o)
  set(skel ${KELPIE_BPF_GEN_DIR}/${name}.skel.h)
  file(GLOB_RECURSE abi_headers ${PROJECT_SOURCE_DIR}/bpf/include/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${KELPIE_CLANG} -O2 -g -target bpf -D__TARGET_ARCH_${KELPIE_BPF_ARCH}
            -Wall -Werror -Wno-unused-function
            -I${KELPIE_BPF_GEN_DIR} -I${PROJECT_SOURCE_DIR}/bpf/include
            -I${PROJECT_SOURCE_DIR}/bpf
            -c ${src} -o ${obj}
    DEPENDS ${src} ${abi_headers} ${KELPIE_BPF_GEN_DIR}/vmlinux.h
    COMMENT "Compiling eBPF object ${name}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${KELPIE_BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "Generating skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(bpf_${name}_gen DEPENDS ${skel})
  add_library(bpf_${name} INTERFACE)
  add_dependencies(bpf_${name} bpf_${name}_gen)
  target_include_directories(bpf_${name} SYSTEM INTERFACE ${KELPIE_BPF_GEN_DIR})
  # The ABI headers shared with C++: #include "kelpie/<family>_abi.h".
  target_include_directories(bpf_${name} INTERFACE ${PROJECT_SOURCE_DIR}/bpf/include)
  target_link_libraries(bpf_${name} INTERFACE PkgConfig::LIBBPF)
  set(KELPIE_BPF_OBJECT_${name} ${obj} PARENT_SCOPE)
  set_property(GLOBAL APPEND PROPERTY KELPIE_BPF_OBJECTS "${name}=${obj}")
endfunction()
