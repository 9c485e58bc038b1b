"""The Redis edge every process shares: one client factory and the Lua scripts, each in a file."""
