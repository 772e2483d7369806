// SVG plot renderer (see render.h).
#include "client/render.h"
namespace anneal {
void RenderSvg(const std::vector<StepResult>& steps, const std::string& title,
               std::ostream& out) {}
}  // namespace anneal
