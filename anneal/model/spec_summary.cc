// A spec in one line (see spec_summary.h), by reflection, so that a new
// family or option appears without a change here.
#include "anneal/model/spec_summary.h"

#include <charconv>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace anneal {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

std::string Number(double v) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), v);
  return std::string(buffer, end);
}

std::string Fields(const Message& m);

std::string Value(const Message& m, const FieldDescriptor* f, int i) {
  const auto* r = m.GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return Number(rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return Number(rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(rep ? r->GetRepeatedInt64(m, f, i)
                              : r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(rep ? r->GetRepeatedInt32(m, f, i)
                              : r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(rep ? r->GetRepeatedUInt64(m, f, i)
                              : r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(rep ? r->GetRepeatedUInt32(m, f, i)
                              : r->GetUInt32(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f)) ? "true"
                                                                    : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return (rep ? r->GetRepeatedEnum(m, f, i) : r->GetEnum(m, f))->name();
    case FieldDescriptor::CPPTYPE_STRING:
      return rep ? r->GetRepeatedString(m, f, i) : r->GetString(m, f);
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const Message& sub =
          rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f);
      return absl::StrCat("(", Fields(sub), ")");
    }
  }
  return "?";
}

// "k v, k [a b], k(...)" over the set fields, in field order.
std::string Fields(const Message& m) {
  std::vector<const FieldDescriptor*> set;
  m.GetReflection()->ListFields(m, &set);
  std::vector<std::string> parts;
  for (const FieldDescriptor* f : set) {
    if (f->is_repeated()) {
      std::vector<std::string> items;
      const int n = m.GetReflection()->FieldSize(m, f);
      for (int i = 0; i < n; ++i) items.push_back(Value(m, f, i));
      parts.push_back(
          absl::StrCat(f->name(), " [", absl::StrJoin(items, " "), "]"));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      parts.push_back(absl::StrCat(f->name(), Value(m, f, 0)));
    } else {
      parts.push_back(absl::StrCat(f->name(), " ", Value(m, f, 0)));
    }
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

std::string SpecFamily(const v1::ScheduleSpec& spec) {
  const google::protobuf::OneofDescriptor* curve =
      spec.GetDescriptor()->FindOneofByName("curve");
  const FieldDescriptor* set =
      curve == nullptr
          ? nullptr
          : spec.GetReflection()->GetOneofFieldDescriptor(spec, curve);
  return set == nullptr ? "none" : set->name();
}

std::string SpecSummary(const v1::ScheduleSpec& spec) {
  std::vector<std::string> parts;
  const std::string family = SpecFamily(spec);
  const FieldDescriptor* curve = spec.GetDescriptor()->FindFieldByName(family);
  parts.push_back(
      curve == nullptr ? family : absl::StrCat(family, Value(spec, curve, 0)));
  if (spec.has_max_lr() && spec.has_min_lr()) {
    parts.push_back(absl::StrCat("lr ", Number(spec.max_lr()), " to ",
                                 Number(spec.min_lr())));
  } else if (spec.has_max_lr()) {
    parts.push_back(absl::StrCat("lr ", Number(spec.max_lr())));
  }
  std::vector<const FieldDescriptor*> set;
  spec.GetReflection()->ListFields(spec, &set);
  for (const FieldDescriptor* f : set) {
    if (f == curve || f->name() == "max_lr" || f->name() == "min_lr") continue;
    parts.push_back(f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE
                        ? absl::StrCat(f->name(), Value(spec, f, 0))
                        : absl::StrCat(f->name(), " ", Value(spec, f, 0)));
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace anneal
