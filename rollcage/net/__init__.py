"""Network namespace plumbing shared by the gateway, sandboxes and the simulated internet."""
