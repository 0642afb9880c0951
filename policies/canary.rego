# Canary waves and confidence (docs/architecture.md: "Storms, waves and confidence").
# Input: input.waves is the rollout plan Terry will follow — [{index, size, hosts,
# environments, canary}], a canary first when a proposal has more than canary.min_hosts
# hosts (or fewer that mix production with others: those others), never a production host
# first while another environment is in the set;
# input.confidence is 0-100 (the remedy's record, the dry run, the diagnosis' source).
#
# - In production the canary is one host: a plan whose canary puts more production hosts
#   first (a fleet of production hosts only, large enough that 10% is two or more) waits
#   for a person, who may approve this plan or reject it (the plan a proposal was judged
#   with is the plan it rolls out: a lowered canary.percent applies to later proposals).
# - A confident proposal (confidence above canary_confidence_min, 80; the remedy verified
#   in more than canary_success_percent_min, 90, percent of its earlier fixes) that rolls
#   out behind a canary is allowed to go on to its canary: a reason to merge.
# - Straight to a canary: such a proposal is not sent to a person only because it has more
#   than max_auto_hosts hosts (gate.rego asks `not straight_to_canary`), when its canary
#   is at most max_auto_hosts hosts and every host is in canary_straight_environments
#   (data.json may set it; the default leaves production out: a person's call). The
#   canary goes first and is watched; a failed watch rolls it back and holds the rest.
#   Every other review or deny rule still holds (production not proven, AI-authored, ...).
package terry.gate

import rego.v1

canary_waves := object.get(input, "waves", [])

canary_production_max := object.get(settings, "canary_production_max", 1)

needs_review contains msg if {
	some first in canary_waves
	first.canary == true
	"production" in first.environments
	first.size > canary_production_max
	msg := sprintf("the canary would change %v production hosts first; in production a canary is at most %v (approve it as planned, or reject it: a later proposal is planned with canary.percent as it is then)", [first.size, canary_production_max])
}

canary_success := object.get(object.get(input, "history", {}), "success_rate", null)

canary_confidence_min := object.get(settings, "canary_confidence_min", 80)

canary_success_percent_min := object.get(settings, "canary_success_percent_min", 90)

# Names in any case, as Terry reads the inventory's (input environments are lower case).
canary_straight_environments := {lower(trim_space(name)) |
	some name in object.get(settings, "canary_straight_environments", ["development", "staging", "test"])
	is_string(name)
}

# The canary wave (the first of several), when the plan has one.
canary_first := [wave | some wave in canary_waves; wave.canary == true][0]

canary_confident if {
	is_number(canary_first.size)
	is_number(input.confidence)
	input.confidence > canary_confidence_min
	is_number(canary_success)
	canary_success * 100 > canary_success_percent_min
}

allow contains msg if {
	canary_confident
	msg := sprintf("confidence %v and %v%% of earlier fixes verified: straight to its canary (%v host(s) first)", [input.confidence, round(canary_success * 100), canary_first.size])
}

straight_to_canary if {
	canary_confident
	canary_first.size <= settings.max_auto_hosts
	every wave in canary_waves {
		every environment in wave.environments {
			environment in canary_straight_environments
		}
	}
}

allow contains msg if {
	straight_to_canary
	input.host_count > settings.max_auto_hosts
	msg := sprintf("touches %v hosts (more than %v), behind a canary of %v: it is applied and watched first, the rest follow only if it holds", [input.host_count, settings.max_auto_hosts, canary_first.size])
}
