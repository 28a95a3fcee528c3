"""How a team talks and decides: inter-round policies, decision rules, voting."""
