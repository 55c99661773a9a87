# Locate LibTorch through the Python torch package (torch.utils.cmake_prefix_path),
# so the C++ library, the CLI and the Python module all use the very same LibTorch.
#
# Sets TORCH_LIBRARIES, TORCH_INCLUDE_DIRS (from TorchConfig), ANCHORS_TORCH_DEFINITIONS
# (the -D flags of TORCH_CXX_FLAGS, e.g. _GLIBCXX_USE_CXX11_ABI) and TORCH_PYTHON_LIBRARY.
function(anchors_find_torch)
  if(NOT Torch_DIR)
    if(NOT Python3_EXECUTABLE)
      find_package(Python3 REQUIRED COMPONENTS Interpreter)
    endif()
    execute_process(
      COMMAND "${Python3_EXECUTABLE}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE _torch_rc ERROR_QUIET)
    if(NOT _torch_rc EQUAL 0)
      message(FATAL_ERROR
        "anchors: cannot import torch with ${Python3_EXECUTABLE}. Install torch==2.13.0 first; "
        "for `pip install .` use `pip install --no-build-isolation .` so the build sees it, "
        "or configure with -DANCHORS_WITH_TORCH=OFF for the LibTorch-free core only.")
    endif()
    set(Torch_DIR "${_torch_prefix}/Torch" CACHE PATH "TorchConfig.cmake directory" FORCE)
  endif()
  # TorchConfig looks for CUDA whenever nvcc is around; the CPU wheel has none,
  # so keep its CUDA probing quiet and optional.
  find_package(Torch REQUIRED)
  separate_arguments(_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  set(_defs "")
  foreach(_f IN LISTS _flags)
    if(_f MATCHES "^-D(.+)$")
      list(APPEND _defs "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  get_filename_component(_torch_root "${Torch_DIR}/../../.." ABSOLUTE)
  find_library(TORCH_PYTHON_LIBRARY torch_python PATHS "${_torch_root}/lib" NO_DEFAULT_PATH)
  set(TORCH_LIBRARIES "${TORCH_LIBRARIES}" PARENT_SCOPE)
  set(TORCH_INCLUDE_DIRS "${TORCH_INCLUDE_DIRS}" PARENT_SCOPE)
  set(TORCH_INSTALL_PREFIX "${_torch_root}" PARENT_SCOPE)
  set(TORCH_PYTHON_LIBRARY "${TORCH_PYTHON_LIBRARY}" PARENT_SCOPE)
  set(ANCHORS_TORCH_DEFINITIONS "${_defs}" PARENT_SCOPE)
  set(Torch_DIR "${Torch_DIR}" PARENT_SCOPE)
  message(STATUS "anchors: LibTorch ${Torch_VERSION} from ${_torch_root} (definitions: ${_defs})")
endfunction()
