"""Test doubles and load generators: the Telegram Bot API emulator, the OpenAI-compatible stub, the local HTTP
server they share, the burst generator, the local help-centre website (source syncing) and the pytest plugin.

They serve the tests, ``make demo`` and the benchmarks; product code never imports them (an import contract in
pyproject.toml checks it; ``bots.demo`` is the one allowed exception, as the demo runs against the emulator).
"""
