// A plain-text table for annealctl's human output: a header row and rows of
// cells, columns left-aligned and separated by two spaces.
#ifndef ANNEAL_CLI_TEXT_TABLE_H_
#define ANNEAL_CLI_TEXT_TABLE_H_

#include <ostream>
#include <string>
#include <vector>

namespace anneal {

class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header);

  // A row with as many cells as the header (missing cells print empty).
  void AddRow(std::vector<std::string> cells);

  // Every line starts with `indent`; the last column is not padded.
  void Print(std::ostream& out, const std::string& indent = "") const;

 private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
};

}  // namespace anneal

#endif  // ANNEAL_CLI_TEXT_TABLE_H_
