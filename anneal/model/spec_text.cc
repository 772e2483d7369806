// JSON/YAML text to protobuf messages (see spec_file.h).
#include "anneal/model/spec_text.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "yaml-cpp/yaml.h"

namespace anneal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

void AppendJsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out->append(absl::StrCat("\\u00", absl::Hex(c, absl::kZeroPad2)));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// Emits a YAML scalar as the JSON value protobuf expects for `field`.
void AppendScalar(const YAML::Node& node, const FieldDescriptor* field,
                  std::string* out) {
  const std::string& text = node.Scalar();
  const std::string lower = absl::AsciiStrToLower(text);
  switch (field ? field->cpp_type() : FieldDescriptor::CPPTYPE_STRING) {
    case FieldDescriptor::CPPTYPE_STRING:
      AppendJsonString(text, out);
      return;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const bool numeric =
          !text.empty() &&
          text.find_first_not_of("-0123456789") == std::string::npos;
      if (numeric) {
        out->append(text);
      } else {
        AppendJsonString(absl::AsciiStrToUpper(text), out);
      }
      return;
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      if (lower == "true" || lower == "false") {
        out->append(lower);
      } else {
        AppendJsonString(text, out);  // protobuf reports the bad value
      }
      return;
    default:
      break;
  }
  // Numbers: YAML's spellings of special values, else the text itself when
  // it is a plain number (protobuf validates range and type).
  if (lower == ".nan" || lower == "nan") return AppendJsonString("NaN", out);
  if (lower == ".inf" || lower == "+.inf" || lower == "inf" ||
      lower == "infinity") {
    return AppendJsonString("Infinity", out);
  }
  if (lower == "-.inf" || lower == "-inf" || lower == "-infinity") {
    return AppendJsonString("-Infinity", out);
  }
  const bool plain_number =
      !text.empty() &&
      text.find_first_not_of("+-0123456789.eE") == std::string::npos &&
      text.find_first_of("0123456789") != std::string::npos;
  if (plain_number && text[0] != '+') {
    out->append(text);
  } else {
    AppendJsonString(text, out);
  }
}

void AppendNode(const YAML::Node& node, const Descriptor* type,
                const FieldDescriptor* field, std::string* out);

void AppendMessage(const YAML::Node& node, const Descriptor* type,
                   std::string* out) {
  out->push_back('{');
  bool first = true;
  for (const auto& kv : node) {
    if (kv.second.IsNull()) continue;
    const std::string key = kv.first.Scalar();
    const FieldDescriptor* f = type ? type->FindFieldByName(key) : nullptr;
    if (type && !f) f = type->FindFieldByCamelcaseName(key);
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(key, out);
    out->push_back(':');
    AppendNode(kv.second, f ? f->message_type() : nullptr, f, out);
  }
  out->push_back('}');
}

void AppendValue(const YAML::Node& node, const Descriptor* type,
                 const FieldDescriptor* field, std::string* out) {
  if (node.IsMap()) {
    AppendMessage(node, type, out);
  } else if (node.IsSequence()) {
    out->push_back('[');
    bool first = true;
    for (const auto& item : node) {
      if (!first) out->push_back(',');
      first = false;
      AppendValue(item, type, field, out);
    }
    out->push_back(']');
  } else if (node.IsNull()) {
    out->append("null");
  } else {
    AppendScalar(node, field, out);
  }
}

void AppendNode(const YAML::Node& node, const Descriptor* type,
                const FieldDescriptor* field, std::string* out) {
  if (field && field->is_map() && node.IsMap()) {
    const FieldDescriptor* value = field->message_type()->map_value();
    out->push_back('{');
    bool first = true;
    for (const auto& kv : node) {
      if (!first) out->push_back(',');
      first = false;
      AppendJsonString(kv.first.Scalar(), out);
      out->push_back(':');
      AppendValue(kv.second, value->message_type(), value, out);
    }
    out->push_back('}');
    return;
  }
  AppendValue(node, type, field, out);
}

// protobuf words errors with type URLs, as in
//
//   (a.b) c: Cannot find field.
//   (a.b): invalid value ...
//
// and anneal's convention is "a.b.c: rule".
std::string ReadableJsonError(std::string message) {
  const std::string url = "type.googleapis.com/";
  for (size_t at; (at = message.find(url)) != std::string::npos;) {
    message.erase(at, url.size());
  }
  if (message.empty() || message[0] != '(') return message;
  const size_t close = message.find(')');
  if (close == std::string::npos) return message;
  const std::string path = message.substr(1, close - 1);
  std::string rest = message.substr(close + 1);
  if (absl::StartsWith(rest, ":")) return path + rest;
  if (absl::StartsWith(rest, " ")) rest.erase(0, 1);
  return path.empty() ? rest : absl::StrCat(path, ".", rest);
}

}  // namespace

absl::Status ParseMessageText(absl::string_view text,
                              google::protobuf::Message* message) {
  message->Clear();
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("not valid JSON or YAML: line ", e.mark.line + 1,
                     ", column ", e.mark.column + 1, ": ", e.msg));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        "expected a JSON object or YAML mapping at the top level");
  }
  std::string json;
  AppendMessage(root, message->GetDescriptor(), &json);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status =
      google::protobuf::util::JsonStringToMessage(json, message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        ReadableJsonError(status.message().as_string()));
  }
  return absl::OkStatus();
}

}  // namespace anneal
