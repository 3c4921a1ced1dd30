"""Short names for the generated protobuf modules of parley/v1."""

from parley.v1 import auth_pb2 as auth
from parley.v1 import calls_pb2 as calls
from parley.v1 import client_pb2 as client
from parley.v1 import common_pb2 as common
from parley.v1 import conference_pb2 as conference
from parley.v1 import echo_pb2 as echo
from parley.v1 import messaging_pb2 as messaging
from parley.v1 import options_pb2 as options
from parley.v1 import presence_pb2 as presence
from parley.v1 import push_pb2 as push
from parley.v1 import routing_pb2 as routing
from parley.v1 import stats_pb2 as stats

__all__ = [
    "auth",
    "calls",
    "client",
    "common",
    "conference",
    "echo",
    "messaging",
    "options",
    "presence",
    "push",
    "routing",
    "stats",
]
