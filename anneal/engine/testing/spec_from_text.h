// Test support: specs written the way the tests write them, as relaxed JSON
//
//   SpecFromText("{max_lr: 0.1, warm_restarts: {period: 10, shape: linear}}")
//   SpecFromText("max_lr: 0.1\nconstant: {}")   // one top-level key a line
//
// Keys and bare words are quoted (bare words upper-cased: they are enum
// names), `.nan`, `.inf` and `-.inf` become protobuf's "NaN", "Infinity" and
// "-Infinity", and protobuf's own JSON parser does the rest, so the engine's
// tests need nothing above the engine. Users' spec files are read by the
// model (anneal/model/spec_text.h), which also takes YAML.
#ifndef ANNEAL_ENGINE_TESTING_SPEC_FROM_TEXT_H_
#define ANNEAL_ENGINE_TESTING_SPEC_FROM_TEXT_H_

#include <cctype>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "anneal/engine/schedule.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace anneal {

// Top-level "key: value" lines as one "{key: value, ...}" flow mapping.
inline std::string FlowMapping(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] == '{') return text;
  std::string out = "{";
  int depth = 0;
  bool in_string = false;
  for (size_t i = first; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') out.push_back(text[i++]);
      if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == '\n' && depth == 0) {
      const size_t last = out.find_last_not_of(" \t\r");
      if (out[last] != '{' && out[last] != ',') out.push_back(',');
      continue;
    }
    if (i < text.size()) out.push_back(text[i]);
  }
  const size_t last = out.find_last_not_of(" \t\r");
  if (out[last] == ',') out.erase(last);
  return out + "}";
}

// `text` as strict JSON (see above).
inline std::string StrictJson(const std::string& relaxed) {
  const std::string text = FlowMapping(relaxed);
  std::string out;
  size_t i = 0;
  auto word_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
           c == '.' || c == '+' || c == '-';
  };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {  // a string, as it is
      size_t end = i + 1;
      while (end < text.size() && text[end] != '"') {
        end += text[end] == '\\' ? 2 : 1;
      }
      out.append(text, i, end + 1 - i);
      i = end + 1;
      continue;
    }
    if (!word_char(c)) {
      out.push_back(c);
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && word_char(text[end])) ++end;
    std::string word = text.substr(i, end - i);
    size_t next = end;
    while (next < text.size() &&
           std::isspace(static_cast<unsigned char>(text[next]))) {
      ++next;
    }
    const bool key = next < text.size() && text[next] == ':';
    if (key) {
      out += "\"" + word + "\"";
    } else if (word == ".nan" || word == ".NaN") {
      out += "\"NaN\"";
    } else if (word == ".inf" || word == "+.inf") {
      out += "\"Infinity\"";
    } else if (word == "-.inf") {
      out += "\"-Infinity\"";
    } else if (word == "true" || word == "false" || word == "null" ||
               std::isdigit(static_cast<unsigned char>(word[0])) ||
               word[0] == '-' || word[0] == '+' || word[0] == '.') {
      out += word;  // a number or a literal
    } else {
      out += "\"" + absl::AsciiStrToUpper(word) + "\"";  // an enum name
    }
    i = end;
  }
  return out;
}

inline v1::ScheduleSpec SpecFromText(const std::string& text) {
  v1::ScheduleSpec spec;
  const auto s =
      google::protobuf::util::JsonStringToMessage(StrictJson(text), &spec);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\nin: " << text;
  return spec;
}

// The compiled spec; the test fails (not crashes) when it is invalid.
inline std::shared_ptr<const Schedule> CompileText(const std::string& text) {
  auto compiled = Schedule::Compile(SpecFromText(text));
  EXPECT_TRUE(compiled.ok()) << compiled.status() << "\nin: " << text;
  if (!compiled.ok()) return nullptr;
  return *compiled;
}

// The INVALID_ARGUMENT message for an invalid spec ("" if it compiled).
inline std::string CompileError(const std::string& text) {
  auto compiled = Schedule::Compile(SpecFromText(text));
  if (compiled.ok()) return "";
  EXPECT_EQ(compiled.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(compiled.status().message());
}

}  // namespace anneal

#endif  // ANNEAL_ENGINE_TESTING_SPEC_FROM_TEXT_H_
