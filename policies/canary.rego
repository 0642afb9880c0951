# Canary waves and confidence (docs/architecture.md: "Storms, waves and confidence").
# Input: input.waves is the rollout plan Terry will follow — [{index, size, hosts,
# environments, canary}], a canary first when a proposal has more than canary.min_hosts
# hosts, never a production host first while another environment is in the set;
# input.confidence is 0-100 (the remedy's record, the dry run, the diagnosis' source).
#
# - In production the canary is one host: a plan whose canary puts more production hosts
#   first (a fleet of production hosts only, large enough that 10% is two or more) waits
#   for a person, who may approve it or ask for canary.percent to be lowered.
# - A confident proposal (confidence above 80, the remedy verified more than 90% of the
#   time) that rolls out behind a canary is allowed to go on to its canary. This adds a
#   reason to merge; it never overrides a review or deny rule (gate.rego: production not
#   proven, more hosts than max_auto_hosts, and the others still ask a person).
package terry.gate

import rego.v1

canary_waves := object.get(input, "waves", [])

canary_production_max := object.get(settings, "canary_production_max", 1)

needs_review contains msg if {
	some first in canary_waves
	first.canary == true
	"production" in first.environments
	first.size > canary_production_max
	msg := sprintf("the canary would change %v production hosts first; in production a canary is at most %v (lower canary.percent, or approve)", [first.size, canary_production_max])
}

canary_success := object.get(object.get(input, "history", {}), "success_rate", null)

allow contains msg if {
	some first in canary_waves
	first.canary == true
	is_number(input.confidence)
	input.confidence > 80
	is_number(canary_success)
	canary_success > 0.9
	msg := sprintf("confidence %v and %v%% of earlier fixes verified: straight to its canary (%v host(s) first)", [input.confidence, round(canary_success * 100), first.size])
}
