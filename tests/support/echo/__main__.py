from parley_service.runtime import main
from tests.support.echo.app import MIGRATIONS, SETTINGS, setup

main(SETTINGS, setup, MIGRATIONS)
