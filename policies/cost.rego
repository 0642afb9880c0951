# Cost (docs/cost.md). Input: input.cost.monthly_change is how much the proposal changes the
# monthly bill, in input.cost.currency (an inventory edit of an instance type or volume: the
# price difference from main's costs/prices.yml; a manifest edit for Argo CD: its
# Deployment's requests times replicas at the list's kubernetes rates; a fix: what its remedy
# declares as monthly_cost, e.g. the EBS variant's GiB grown at the volume price, else 0);
# null with input.cost.error when Terry cannot price the change.
#
# - a change that raises the bill by more than settings.cost.review_above (policies/data.json)
#   waits for a person, the amount in the reason;
# - a change Terry cannot price waits for a person: unknown is not free;
# - a Kubernetes requests recommendation (remedy cost-requests) always waits for a person.
package terry.gate

# `import rego.v1` like the other policies: terry.gate.child adds gate.rego before the rest
# (a module importing rego.v1 that sorts before it used to leave gate.rego's `reasons`
# undefined under celine-regorus 0.9.1; tests/unit/test_canary_waves.py).
import rego.v1

cost_view := object.get(input, "cost", {})

cost_change := object.get(cost_view, "monthly_change", 0)

# Without the setting any raise is reviewed: failing safe, never silently unlimited.
cost_review_above := object.get(object.get(settings, "cost", {}), "review_above", 0)

cost_currency := object.get(cost_view, "currency", "") if is_string(object.get(cost_view, "currency", null))

else := ""

needs_review contains msg if {
	is_number(cost_change)
	cost_change > cost_review_above
	msg := sprintf("raises the monthly cost by %v %v (more than %v %v, settings.cost.review_above in policies/data.json); a person approves the spend", [round(cost_change * 100) / 100, cost_currency, cost_review_above, cost_currency])
}

needs_review contains msg if {
	is_string(object.get(cost_view, "error", null))
	not is_number(cost_change)
	msg := sprintf("the cost of this change is unknown (%v); a person decides", [cost_view.error])
}

# A cost recommendation for a Kubernetes workload (terry cost propose requests:TARGET/CONTAINER)
# lowers what its containers may reserve: a person always reviews it, whatever the record.
needs_review contains msg if {
	input.remedy == "cost-requests"
	msg := "a cost recommendation changes a workload's requests; a person reviews it"
}
