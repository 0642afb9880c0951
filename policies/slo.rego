# Error budgets (slos/ on main, docs/slo.md). Input: input.slo.services holds, for every
# service the proposal's hosts serve (terry_labels: service) that has an SLO, its state
# (ok, low, exhausted, unknown), budget_remaining_percent (exact, as the state was judged)
# and budget_remaining_text (as people read it), burn_rates and burning pairs;
# input.slo.low_percent is the line under which Terry judges a budget low (10).
# input.source says what raised the incident: alert (a fix of a live problem), drift (a
# reconciliation), forecast or anomaly (preventive), inventory (an edit someone asked for);
# an input without one is not taken for a fix.
#
# - low (under slo_low_percent of budget left): changes that are not fixes wait for a person;
# - budget exhausted: only fixes go ahead; any other change is denied until it recovers;
# - budget unknown (Prometheus down, no traffic, a query refused): a person decides;
# - SLO specs main cannot read, while a host names a service: a person decides.
# A fix that protects a burning budget is marked as a priority by the gate step itself.
package terry.gate

import rego.v1

slo_view := object.get(input, "slo", {})

slo_low_percent := object.get(slo_view, "low_percent", 10)

slo_services := object.get(slo_view, "services", {})

slo_source := object.get(input, "source", "unknown")

slo_fix if slo_source == "alert"

slo_change_words := {
	"drift": "drift reconciliation",
	"forecast": "preventive change",
	"anomaly": "preventive change",
	"inventory": "inventory edit",
	"unknown": "change of unknown source",
}

slo_change := object.get(slo_change_words, slo_source, sprintf("%v change", [slo_source]))

slo_exhausted(budget) if budget.state == "exhausted"

slo_exhausted(budget) if {
	is_number(budget.budget_remaining_percent)
	budget.budget_remaining_percent <= 0
}

deny contains msg if {
	some name, budget in slo_services
	slo_exhausted(budget)
	not slo_fix
	msg := sprintf("service %v has spent its error budget: only fixes that restore it go ahead, so this %v waits until the budget recovers (slos/, policies/slo.rego)", [name, slo_change])
}

# Low: the state Terry judged, or (an input without one) the figure under the line.
slo_low(budget) if budget.state == "low"

slo_low(budget) if {
	not is_string(budget.state)
	is_number(budget.budget_remaining_percent)
	budget.budget_remaining_percent < slo_low_percent
}

slo_left(budget) := object.get(budget, "budget_remaining_text", sprintf("%v%%", [object.get(budget, "budget_remaining_percent", "?")]))

needs_review contains msg if {
	some name, budget in slo_services
	not slo_exhausted(budget)
	slo_low(budget)
	not slo_fix
	msg := sprintf("service %v has %v of its error budget left (under %v%%): changes that are not fixes are frozen, and this %v needs a person", [name, slo_left(budget), slo_low_percent, slo_change])
}

needs_review contains msg if {
	some name, budget in slo_services
	budget.state == "unknown"
	msg := sprintf("the error budget of service %v is unknown (%v); unknown is not healthy, a person decides", [name, object.get(budget, "error", "no figures")])
}

needs_review contains msg if {
	is_string(slo_view.error)
	msg := sprintf("the SLO specs on main cannot be read (%v); failing closed to review", [slo_view.error])
}
