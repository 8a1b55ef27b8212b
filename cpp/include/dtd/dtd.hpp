// Umbrella header for C++ users of the dtd core.
#pragma once

#include "dtd/build_info.hpp"
#include "dtd/error.hpp"
#include "dtd/explain.hpp"
#include "dtd/import.hpp"
#include "dtd/layer.hpp"
#include "dtd/model_spec.hpp"
#include "dtd/network.hpp"
#include "dtd/onnx.hpp"
#include "dtd/rules.hpp"
#include "dtd/tensor.hpp"
#include "dtd/threads.hpp"
