# Terry's default gate. Input: see docs/policy.md. Output: data.terry.gate =
#   {"decision": "merge" | "review" | "deny", "reasons": {...}}
# Precedence: any deny wins; otherwise any review need wins; merge only when nothing objects.
package terry.gate

import rego.v1

settings := data.terry.settings

default decision := "review"

decision := "deny" if count(deny) > 0

decision := "review" if {
	count(deny) == 0
	count(needs_review) > 0
}

decision := "merge" if {
	count(deny) == 0
	count(needs_review) == 0
	count(allow) > 0
}

reasons := deny if count(deny) > 0

reasons := needs_review if {
	count(deny) == 0
	count(needs_review) > 0
}

reasons := allow if {
	count(deny) == 0
	count(needs_review) == 0
	count(allow) > 0
}

reasons := {"no rule allowed an automatic merge"} if {
	count(deny) == 0
	count(needs_review) == 0
	count(allow) == 0
}

# --- deny: never apply ------------------------------------------------------------------

deny contains msg if {
	not input.check.ok
	msg := sprintf("the check-mode dry run failed on %v; fix the remedy before applying", [concat(", ", array.concat(input.check.failed_hosts, input.check.unreachable_hosts))])
}

deny contains msg if {
	some module in input.modules
	not module in settings.allowed_modules
	msg := sprintf("module %v is not on the allow-list (policies/data.json)", [module])
}

# --- review: a human decides ------------------------------------------------------------

needs_review contains msg if {
	input.risk == "high"
	msg := "risk is high"
}

needs_review contains msg if {
	input.remedy == "inventory-edit"
	msg := "an inventory edit changes the desired state; a person reviews it"
}

needs_review contains msg if {
	input.risk == "medium"
	not inventory_edit
	not proven
	msg := "risk is medium and the remedy has no record of success yet"
}

needs_review contains msg if {
	input.environment == "production"
	not inventory_edit
	not proven
	msg := sprintf("production host and remedy %v has not succeeded often enough (%v of %v runs verified, needs %v at %v%%)", [input.remedy, input.history.verified, input.history.runs, settings.proven_min_runs, settings.proven_success_percent])
}

needs_review contains msg if {
	input.host_count > settings.max_auto_hosts
	msg := sprintf("touches %v hosts (more than %v)", [input.host_count, settings.max_auto_hosts])
}

needs_review contains msg if {
	input.ai_authored
	msg := "AI-authored fix"
}

needs_review contains msg if {
	input.recurrence >= settings.recurrence_review
	msg := sprintf("this problem came back %v times; a fix that keeps recurring needs a human look", [input.recurrence])
}

# --- allow ------------------------------------------------------------------------------

allow contains "low risk outside production" if {
	input.risk == "low"
	input.environment != "production"
}

allow contains msg if {
	proven
	msg := sprintf("remedy %v verified %v of %v times before", [input.remedy, input.history.verified, input.history.runs])
}

# An inventory edit is a different change each time: no record makes the next one safe.
inventory_edit if input.remedy == "inventory-edit"

proven if {
	not inventory_edit
	input.history.runs >= settings.proven_min_runs
	input.history.verified * 100 >= settings.proven_success_percent * input.history.runs
}
