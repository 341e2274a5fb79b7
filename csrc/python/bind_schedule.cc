// This file implements the Python bindings of pipeline schedules (action
// lists, text form, deadlock check). Schedules cross the boundary as their
// text form (plan/schedule.h documents the grammar and semantics); errors
// become ValueError through status_exceptions.h.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "plan/schedule.h"
#include "plan/schedule_builders.h"
#include "python/status_exceptions.h"

namespace py = pybind11;

namespace alpa::python {
namespace {

py::dict simulation_to_dict(const plan::Schedule& schedule, const plan::SimulationResult& result) {
  std::vector<double> busy, idle, finish;
  std::vector<int64_t> in_flight;
  for (const plan::RankTimeline& line : result.ranks) {
    busy.push_back(line.busy);
    idle.push_back(line.idle);
    finish.push_back(line.finish);
    in_flight.push_back(line.max_in_flight);
  }
  py::dict out;
  out["makespan"] = result.makespan;
  out["bubble_fraction"] = result.bubble_fraction;
  out["busy"] = busy;
  out["idle"] = idle;
  out["finish"] = finish;
  out["max_in_flight"] = in_flight;
  out["num_ranks"] = schedule.num_ranks;
  out["num_stages"] = schedule.num_stages;
  out["num_micro_batches"] = schedule.num_micro_batches;
  return out;
}

}  // namespace

void bind_schedule(py::module_& m) {
  m.def("schedule", [](const std::string& kind, int64_t num_stages, int64_t num_micro_batches,
                       int64_t num_virtual) {
    return unwrap(plan::build_schedule(kind, num_stages, num_micro_batches, num_virtual)).to_string();
  }, py::arg("kind"), py::arg("num_stages"), py::arg("num_micro_batches"), py::arg("num_virtual") = 1,
     "Text of a built schedule, one line per rank. kind: 'gpipe', '1f1b' or 'interleaved_1f1b'. "
     "num_stages is the number of pipeline ranks (device groups); with num_virtual = V each rank hosts "
     "V stages, so the model is cut into num_stages * V stages.");
  m.def("check_schedule", [](const std::string& text, double forward_cost, double backward_cost) {
    plan::Schedule schedule = unwrap(plan::Schedule::from_text(text));
    plan::SimulationOptions options;
    options.forward_cost = forward_cost;
    options.backward_cost = backward_cost;
    plan::SimulationResult result = unwrap(plan::simulate_schedule(schedule, options));
    return simulation_to_dict(schedule, result);
  }, py::arg("text"), py::kw_only(), py::arg("forward_cost") = 1.0, py::arg("backward_cost") = 2.0,
     "Validate and simulate a schedule given as text; returns makespan, bubble_fraction and per-rank "
     "busy/idle/finish/max_in_flight. Raises ValueError naming the action, or with the rank x step grid "
     "on deadlock.");
  m.def("parse_schedule", [](const std::string& text) {
    plan::Schedule schedule = unwrap(plan::Schedule::from_text(text));
    bool short_form = schedule.stages_implied();
    std::vector<std::vector<std::string>> out;
    for (const auto& actions : schedule.ranks) {
      std::vector<std::string>& row = out.emplace_back();
      for (const plan::Action& a : actions) row.push_back(short_form ? a.to_short_string() : a.to_string());
    }
    return out;
  }, py::arg("text"), "The action tokens of each rank, as the schedule's text form writes them.");
}

}  // namespace alpa::python
