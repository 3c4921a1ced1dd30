"""`python -m parley_stats`: run the stats service (settings from PARLEY_* variables)."""

from parley_service.runtime import main
from parley_stats.app import MIGRATIONS, setup
from parley_stats.settings import StatsSettings

if __name__ == "__main__":
    main(StatsSettings, setup, MIGRATIONS)
