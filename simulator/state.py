"""Everything the simulator knows, in one object shared by the exchange faces and ``/_sim``."""

from __future__ import annotations

from simulator.accounts import AccountBook
from simulator.clock import SimClock
from simulator.faults import FaultBook
from simulator.markets import MarketBook
from simulator.requestlog import RequestLog
from simulator.scenario import Scenario
from simulator.weights import BudgetPolicy, WeightBudget


class SimulatorState:
    """The simulated exchange: accounts, market, clock, weight budgets, faults and the log."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.clock = SimClock()
        self.accounts = AccountBook(scenario.accounts, self.clock)
        #: Binance face: symbol rules, brackets and mark prices.
        self.markets = MarketBook(scenario.markets)
        self.faults = FaultBook()
        #: generic-v2 face: one budget per API key.
        self.key_budget = WeightBudget(self._policy(scenario.weight_limit_per_minute))
        #: Binance face: one budget per client IP, shared by every key behind it.
        self.ip_budget = WeightBudget(self._policy(scenario.binance_weight_limit_per_minute))
        self.requests = RequestLog(scenario.request_log_size)

    def _policy(self, limit: int) -> BudgetPolicy:
        return BudgetPolicy(
            limit=limit,
            window_s=self.scenario.weight_window_s,
            ban_s=self.scenario.ban_s,
            grace_s=self.scenario.ban_grace_s,
        )

    def reset(self) -> None:
        """Back to the scenario file: accounts, clock, faults, budgets, bans and the log."""
        self.clock.reset()
        self.accounts.reset()
        self.markets.reset()
        self.faults.clear()
        self.key_budget.reset()
        self.ip_budget.reset()
        self.requests.clear()
