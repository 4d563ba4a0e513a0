// The schema definition files (defs/*.yaml), compiled into the binary by CMake.
#pragma once

#include <string_view>
#include <vector>

namespace kelpie::api::schema {

struct EmbeddedSchemaFile {
  std::string_view name;  // file name, e.g. "core_v1.yaml"
  std::string_view text;
};

const std::vector<EmbeddedSchemaFile>& EmbeddedSchemaFiles();

}  // namespace kelpie::api::schema
