"""Pyramid add-on: ``config.include('appendonly.pyramid')``.

For applications that use pyramid_tm and pyramid_zodbconn (``zodbconn.uri``
setting).  Gives every request, in its own ZODB connection and transaction:

- ``request.activity_log(name)``: an :class:`ActivityLog` (an AppendStack
  with its Archive), created under the root on first use;
- ``request.durable_queue(name)`` and ``request.durable_dict(name)``: the
  façades, embedded (they join the request's transaction);

and a JSON view, ``GET {appendonly.feed_path}/{name}?gen=G&index=I``
(default path ``/appendonly/feed``), returning the entries of a log newer
than the client's cursor, so a browser can poll an activity feed.

Settings: ``appendonly.max_layers`` (10) and ``appendonly.max_length``
(100) for new logs, ``appendonly.feed_path``, ``appendonly.feed_limit``
(the most entries one response carries, 1000).

Conflicts: appends to one log from concurrent requests merge in conflict
resolution, so they do not fail.  Creating a log, queue or dict changes the
root container, which can conflict with a request creating another one:
include ``pyramid_retry`` (``retry.attempts``) to retry such requests.
"""
from BTrees.OOBTree import OOBTree
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.httpexceptions import HTTPNotFound
from pyramid_zodbconn import get_connection

from appendonly._activity import ActivityLog  # noqa: F401  older records

#: Root key of the container holding the add-on's logs, queues and dicts.
ROOT_KEY = 'appendonly.pyramid'


def _container(request):
    root = get_connection(request).root()
    container = root.get(ROOT_KEY)
    if container is None:
        container = root[ROOT_KEY] = OOBTree()
    return container


def _get_or_create(request, kind, name, factory):
    container = _container(request)
    obj = container.get((kind, name))
    if obj is None:
        obj = container[(kind, name)] = factory()
    return obj


def activity_log(request, name):
    settings = request.registry.settings
    return _get_or_create(request, 'log', name, lambda: ActivityLog(
        int(settings.get('appendonly.max_layers', 10)),
        int(settings.get('appendonly.max_length', 100))))


def durable_queue(request, name):
    from appendonly.facades import DurableQueue
    from appendonly.facades import QueueData
    return DurableQueue(_get_or_create(request, 'queue', name, QueueData),
                        name)


def durable_dict(request, name):
    from appendonly.facades import DictData
    from appendonly.facades import DurableDict
    return DurableDict(_get_or_create(request, 'dict', name, DictData),
                       name)


def feed_view(request):
    """JSON: ``{"entries": [[gen, index, entry], ...], "cursor": [gen,
    index]}``, oldest first; ``cursor`` is what to send next time."""
    try:
        generation = int(request.params.get('gen', -1))
        index = int(request.params.get('index', -1))
    except ValueError:
        raise HTTPBadRequest('gen and index must be integers')
    name = request.matchdict['name']
    container = get_connection(request).root().get(ROOT_KEY)
    log = container.get(('log', name)) if container is not None else None
    if log is None:
        raise HTTPNotFound(f'no activity log {name!r}')
    limit = int(request.registry.settings.get('appendonly.feed_limit', 1000))
    entries = log.newer(generation, index, limit)
    cursor = list(entries[-1][:2]) if entries else [generation, index]
    return {'entries': [list(entry) for entry in entries], 'cursor': cursor}


def includeme(config):
    settings = config.get_settings()
    config.include('pyramid_tm')
    config.include('pyramid_zodbconn')
    config.add_request_method(activity_log, 'activity_log')
    config.add_request_method(durable_queue, 'durable_queue')
    config.add_request_method(durable_dict, 'durable_dict')
    path = settings.get('appendonly.feed_path', '/appendonly/feed')
    config.add_route('appendonly.feed', path.rstrip('/') + '/{name}')
    config.add_view(feed_view, route_name='appendonly.feed', renderer='json',
                    request_method='GET')
