"""Pyramid add-on: ``config.include('appendonly.pyramid')``.

For applications that use pyramid_tm and pyramid_zodbconn (``zodbconn.uri``
setting).  Gives every request, in its own ZODB connection and transaction:

- ``request.activity_log(name)``: an :class:`ActivityLog` (an AppendStack
  with its Archive), created under the root on first use;
- ``request.durable_queue(name)`` and ``request.durable_dict(name)``: the
  façades, embedded (they join the request's transaction);

and a JSON view, ``GET {appendonly.feed_path}/{name}?gen=G&index=I``
(default path ``/appendonly/feed``), returning the entries of a log newer
than the client's cursor, so a browser can poll an activity feed.  Without
a cursor it returns the newest entries; ``gen=-1&index=-1`` is the start
of the log.  Its work is bounded by ``appendonly.feed_limit`` and the
stack's window, not by the size of the log (see ``appendonly._activity``).
A log that does not exist yet reads as an empty feed, so clients can start
polling before the first entry; a GET never creates one.

The view requires the permission named by ``appendonly.feed_permission``
(``view`` by default), so an application with a security policy protects
it; without a policy Pyramid lets everyone in.  Its errors (400 for a bad
cursor, 403, 404) are JSON, ``{"error": "..."}``.

Settings: ``appendonly.max_layers`` (10) and ``appendonly.max_length``
(100) for new logs, ``appendonly.feed_path``, ``appendonly.feed_limit``
(the most entries one response carries, 1000), and
``appendonly.feed_permission``.

Conflicts: appends to one log from concurrent requests merge in conflict
resolution, so they do not fail.  Creating a log, queue or dict changes the
root container, which can conflict with a request creating another one:
include ``pyramid_retry`` (``retry.attempts``) to retry such requests.
"""
from BTrees.OOBTree import OOBTree
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.httpexceptions import HTTPError
from pyramid.httpexceptions import HTTPForbidden
from pyramid_zodbconn import get_connection

from appendonly._activity import ActivityLog  # noqa: F401  older records
from appendonly._feed import CursorError
from appendonly._feed import answer
from appendonly._feed import parse_cursor
from appendonly._keys import PYRAMID_KEY

#: Root key of the container holding the add-on's logs, queues and dicts.
ROOT_KEY = PYRAMID_KEY

#: The permission the feed view requires by default
#: (``appendonly.feed_permission``).
FEED_PERMISSION = 'view'

#: The most entries one feed response carries by default
#: (``appendonly.feed_limit``).
FEED_LIMIT = 1000


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
    index]}``, oldest first; ``cursor`` is what to send next time.

    Without a cursor, the newest entries (at most ``limit``); with one,
    the oldest entries after it (at most ``limit``), so a client polling
    with the cursor it got back sees every entry once, in order (read as
    the Zope view reads them: :mod:`appendonly._feed`).  A log that does
    not exist yet reads as empty, and is not created."""
    try:
        cursor = parse_cursor(request.GET.getall)
    except CursorError as e:
        raise HTTPBadRequest(str(e))
    container = get_connection(request).root().get(ROOT_KEY)
    log = container.get(('log', request.matchdict['name'])) \
        if container is not None else None
    if log is None:
        return {'entries': [], 'cursor': list(cursor or (-1, -1))}
    return answer(log, cursor, request.registry.settings[
        'appendonly.feed_limit'])


def feed_error_view(exc, request):
    """The feed's errors (400, 403, 404...) as JSON: ``{"error": "..."}``,
    with the status of the HTTP error."""
    request.response.status = exc.status
    if isinstance(exc, HTTPForbidden):
        # Pyramid's own message names the view function.
        message = 'not allowed to read this feed'
    else:
        message = exc.detail or exc.title
    return {'error': str(message)}


def _feed_limit(settings):
    value = settings.get('appendonly.feed_limit', FEED_LIMIT)
    try:
        limit = int(value)
    except (TypeError, ValueError):
        limit = 0
    if limit < 1:
        raise ConfigurationError(
            f'appendonly.feed_limit must be an integer >= 1, not {value!r}')
    return limit


def includeme(config):
    settings = config.get_settings()
    # Settings first: a bad one stops here, before a database is opened.
    # The view reads the limit checked and converted.
    settings['appendonly.feed_limit'] = _feed_limit(settings)
    permission = settings.get('appendonly.feed_permission', FEED_PERMISSION)
    if not isinstance(permission, str) or not permission.strip():
        raise ConfigurationError(
            f'appendonly.feed_permission must be a permission name, not '
            f'{permission!r}')
    config.include('pyramid_tm')
    config.include('pyramid_zodbconn')
    config.add_request_method(activity_log, 'activity_log')
    config.add_request_method(durable_queue, 'durable_queue')
    config.add_request_method(durable_dict, 'durable_dict')
    path = settings.get('appendonly.feed_path', '/appendonly/feed')
    config.add_route('appendonly.feed', path.rstrip('/') + '/{name}')
    config.add_view(feed_view, route_name='appendonly.feed', renderer='json',
                    request_method='GET', permission=permission.strip())
    # Scoped to the route: the application's other error pages stay its own.
    config.add_exception_view(feed_error_view, context=HTTPError,
                              route_name='appendonly.feed', renderer='json')
