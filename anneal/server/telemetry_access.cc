// The telemetry port's token check (see telemetry_access.h).
#include "anneal/server/telemetry_access.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace anneal {
namespace {

HttpResponse Refuse(int status, absl::string_view why) {
  HttpResponse r{status, "text/plain; charset=utf-8", absl::StrCat(why, "\n")};
  if (status == 401) {
    r.headers.emplace_back("WWW-Authenticate",
                           "Basic realm=\"anneal\", charset=\"UTF-8\"");
  }
  return r;
}

// "Bearer TOKEN" for either form, or "" when the header is neither.
std::string AsBearer(absl::string_view header) {
  header = absl::StripAsciiWhitespace(header);
  if (absl::StartsWithIgnoreCase(header, "bearer ")) return std::string(header);
  if (!absl::StartsWithIgnoreCase(header, "basic ")) return "";
  std::string decoded;
  if (!absl::Base64Unescape(absl::StripAsciiWhitespace(header.substr(6)),
                            &decoded)) {
    return "";
  }
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return "";
  return absl::StrCat("Bearer ", decoded.substr(colon + 1));
}

}  // namespace

std::optional<HttpResponse> CheckTelemetryAccess(const Authorizer& authorizer,
                                                 const HttpRequest& request) {
  if (!request.has_authorization) {
    return Refuse(401,
                  "this page needs a token of the server's tokens file: "
                  "'Authorization: Bearer TOKEN', or basic auth with the "
                  "token as the password");
  }
  const std::string bearer = AsBearer(request.authorization);
  if (bearer.empty()) {
    return Refuse(401, "authorization: must be 'Bearer TOKEN' or 'Basic ...'");
  }
  absl::StatusOr<Principal> principal =
      authorizer.Authenticate(/*present=*/true, bearer);
  if (!principal.ok()) return Refuse(401, principal.status().message());
  if (principal->scoped()) {
    return Refuse(
        403, absl::StrCat("token '", principal->name,
                          "' is limited to schedules labelled ",
                          principal->label_key, "=", principal->label_value,
                          "; this port shows every schedule"));
  }
  return std::nullopt;
}

}  // namespace anneal
