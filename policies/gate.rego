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

# A failed dry run always denies; its reasons say where it failed. A host the dry run could
# not reach is unreachable (its connection, not the remedy, is what to fix).
deny contains msg if {
	not input.check.ok
	count(check_failed_hosts) > 0
	msg := sprintf("the check-mode dry run failed on %v; fix the remedy before applying", [concat(", ", check_failed_hosts)])
}

deny contains msg if {
	not input.check.ok
	count(check_unreachable_hosts) > 0
	msg := sprintf("the dry run could not reach %v; check that it is up and that its connection (SSH) works", [concat(", ", check_unreachable_hosts)])
}

deny contains "the check-mode dry run did not complete (no host failed: a timeout or an error of Ansible itself)" if {
	not input.check.ok
	count(check_failed_hosts) == 0
	count(check_unreachable_hosts) == 0
}

check_failed_hosts := input.check.failed_hosts if is_array(input.check.failed_hosts)

else := []

check_unreachable_hosts := input.check.unreachable_hosts if is_array(input.check.unreachable_hosts)

else := []

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
	msg := sprintf("risk is medium and %v", [not_proven_why])
}

needs_review contains msg if {
	input.environment == "production"
	not inventory_edit
	not proven
	msg := sprintf("production host and %v", [not_proven_why])
}

needs_review contains msg if {
	input.host_count > settings.max_auto_hosts
	msg := sprintf("touches %v hosts (more than %v)", [input.host_count, settings.max_auto_hosts])
}

needs_review contains msg if {
	input.ai_authored
	msg := "AI-authored fix"
}

# A remedy may estimate in its dry run what its fix would achieve (check.estimates); a fix
# that by its own estimate cannot solve the problem is not applied without a person.
needs_review contains msg if {
	some estimate in check_estimates
	object.get(estimate, "enough", false) != true
	msg := sprintf("the dry run estimates the fix falls short on %v: %v", [estimate.host, estimate.summary])
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
	msg := sprintf("remedy %v may merge in %v (auto_merge in policies/data.json) and its record there holds: %v of %v verified, the last one too", [input.remedy, input.environment, here.verified, here.runs])
}

check_estimates := input.check.estimates if is_array(input.check.estimates)

else := []

# An inventory edit is a different change each time: no record makes the next one safe.
inventory_edit if input.remedy == "inventory-edit"

# Learning from outcomes. A remedy merges without review where it is not low risk, or in
# production, only when both hold:
# - a person has listed it for the environment in settings.auto_merge (policies/data.json);
#   `terry policy learn` proposes those changes from the record, as a commit to review;
# - its record in that environment still holds: enough runs, enough verified, and the last
#   one verified. A failure drops it back to review at once, before any data changes.
here := object.get(input.history, "in_environment", {"runs": 0, "verified": 0, "last_outcome": null})

listed if input.environment in object.get(settings.auto_merge, input.remedy, [])

record_holds if {
	here.runs >= settings.proven_min_runs
	here.verified * 100 >= settings.proven_success_percent * here.runs
	here.last_outcome == "verified"
}

proven if {
	not inventory_edit
	listed
	record_holds
}

record_text := sprintf("no runs yet in %v; needs %v runs at %v%%", [input.environment, settings.proven_min_runs, settings.proven_success_percent]) if here.runs == 0

record_text := sprintf("%v of %v verified in %v, the last one %v; needs %v runs at %v%% and the last one verified", [here.verified, here.runs, input.environment, here.last_outcome, settings.proven_min_runs, settings.proven_success_percent]) if here.runs > 0

not_proven_why := sprintf("remedy %v is listed to merge in %v but its record there no longer holds (%v)", [input.remedy, input.environment, record_text]) if {
	listed
	not record_holds
}

not_proven_why := sprintf("remedy %v is not listed to merge in %v (auto_merge in policies/data.json; record: %v)", [input.remedy, input.environment, record_text]) if not listed
