// What a schedule's LR sequence does as t -> infinity: the two Robbins-Monro
// conditions, decided from the family's structure (docs/analysis.md).
#ifndef ANNEAL_ENGINE_ASYMPTOTICS_H_
#define ANNEAL_ENGINE_ASYMPTOTICS_H_

#include <string>

namespace anneal {

struct Asymptotics {
  bool sum_diverges = false;           // condition 1: sum lr_t = infinity
  bool sum_squares_converges = false;  // condition 2: sum lr_t^2 < infinity
  std::string reason;                  // the family's rule, in words
};

}  // namespace anneal

#endif  // ANNEAL_ENGINE_ASYMPTOTICS_H_
