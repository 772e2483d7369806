// ASCII chart renderer (see render.h).
#include "client/render.h"
namespace anneal {
void RenderAscii(const std::vector<StepResult>& steps, int width, int height,
                 std::ostream& out) {}
}  // namespace anneal
