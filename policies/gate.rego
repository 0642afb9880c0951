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

# Unless it goes straight to a watched canary (canary.rego: confident, outside production;
# false when a repository has no canary.rego).
default straight_to_canary := false

needs_review contains msg if {
	input.host_count > settings.max_auto_hosts
	not straight_to_canary
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

# --- tenants (policies/tenants.yml, docs/tenants.md) ----------------------------------------
# input.tenants names every tenant a host is in; input.tenant_settings holds each one's
# settings when the repository defines tenants. Review steps ask one approval per tenant.

tenant_settings := object.get(input, "tenant_settings", {})

risk_rank := {"low": 0, "medium": 1, "high": 2}

# A risk Terry does not know ranks highest.
proposal_rank := object.get(risk_rank, input.risk, 3)

tenants_with_settings := [name | some name in input.tenants; tenant_settings[name]]

deny contains msg if {
	some name in tenants_with_settings
	s := tenant_settings[name]
	s.defined
	count({p | some p in s.permissions; p in {"write", "auto-resolve", "manual-approval-only"}}) == 0
	msg := sprintf("tenant %v's permissions are read-only (policies/tenants.yml): Terry does not change its hosts", [name])
}

needs_review contains msg if {
	is_string(input.tenants_error)
	msg := sprintf("the tenants file cannot be read (%v); failing closed to review", [input.tenants_error])
}

needs_review contains msg if {
	some name in tenants_with_settings
	not tenant_settings[name].defined
	msg := sprintf("a host names tenant %v (terry_tenant), which policies/tenants.yml does not define; a person approves", [name])
}

needs_review contains msg if {
	some name in tenants_with_settings
	s := tenant_settings[name]
	s.defined
	not s.can_auto_resolve
	msg := sprintf("tenant %v never merges on its own (can_auto_resolve: false); a reviewer of %v approves", [name, name])
}

needs_review contains msg if {
	some name in tenants_with_settings
	s := tenant_settings[name]
	s.defined
	s.can_auto_resolve
	proposal_rank >= risk_rank[s.approval_threshold]
	msg := sprintf("risk %v is at or above tenant %v's approval threshold (%v); a reviewer of %v approves", [input.risk, name, s.approval_threshold, name])
}

needs_review contains msg if {
	count(tenants_with_settings) > 1
	msg := sprintf("touches hosts of %v tenants; each must approve: %v", [count(tenants_with_settings), concat(", ", sort(tenants_with_settings))])
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

# data.json may name an environment in any case: Terry reads the inventory's names in lower
# case (terry.environments), and so does this.
listed if {
	some name in object.get(settings.auto_merge, input.remedy, [])
	is_string(name)
	lower(trim_space(name)) == input.environment
}

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
