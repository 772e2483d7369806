// How annealctl shows schedules: the human views of get, list, create,
// update, restart, advance and reports, and the JSON form for scripts
// (protobuf's JSON mapping with the proto field names).
#ifndef ANNEAL_CLI_SCHEDULE_VIEW_H_
#define ANNEAL_CLI_SCHEDULE_VIEW_H_

#include <ostream>
#include <string>
#include <vector>

#include "anneal/v1/service.pb.h"
#include "google/protobuf/message.h"

namespace anneal {

// Labels as "k1=v1,k2=v2", sorted by key.
std::string FormatLabels(
    const google::protobuf::Map<std::string, std::string>& labels);

// `message` as one line of JSON (proto field names).
std::string CompactJson(const google::protobuf::Message& message);

// `message` as indented JSON with every field (defaults included) and a
// final newline: the -o json output.
void PrintJson(const google::protobuf::Message& message, std::ostream& out);

// get: every field, the timeline as a table and the spec in force.
void PrintSchedule(const v1::Schedule& schedule, std::ostream& out);

// One line after a write: "<verb> schedules/x (revision 2, etag ..., ...)".
void PrintWriteSummary(const std::string& verb, const v1::Schedule& schedule,
                       std::ostream& out);

// list: NAME, REVISION, POSITION, MAX_SERVED, FAMILY, LABELS.
void PrintScheduleTable(const std::vector<v1::Schedule>& schedules,
                        std::ostream& out);

// reports: STEP, REVISION, TIME and one column per metric (the union over
// the reports, sorted); an empty cell where a step has no such metric.
// Values are printed with 6 significant digits.
void PrintReportTable(const std::vector<v1::MetricReport>& reports,
                      std::ostream& out);

// reports -o csv: step,revision,report_time,<metrics...>, values with 17
// significant digits so they read back bit for bit (nan, inf as such).
void PrintReportCsv(const std::vector<v1::MetricReport>& reports,
                    std::ostream& out);

// advance: the new position and the step result there.
void PrintAdvance(const std::string& name, const v1::AdvanceResponse& response,
                  std::ostream& out);

}  // namespace anneal

#endif  // ANNEAL_CLI_SCHEDULE_VIEW_H_
