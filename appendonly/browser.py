"""The Zope feed view, ``@@appendonly-feed`` (registered in
``appendonly/configure.zcml`` for ``IActivityLogHolder``, with the
``zope2.View`` permission): the JSON feed of the Pyramid add-on, for a
Zope object's activity log."""
import json

from Products.Five import BrowserView
from zope.interface import implementer

from appendonly.interfaces import IActivityFeedView
from appendonly.interfaces import IActivityLog

#: The largest ``gen`` or ``index`` accepted (positions are far smaller:
#: anything above is a client bug, answered with 400).
MAX_POSITION = 2 ** 63 - 1


class _BadParameter(ValueError):
    """A query parameter the view refuses (answered with status 400)."""


def _position(form, name):
    value = form.get(name, '-1')
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None       # not an integer (or given twice: a list)
    if number is None or not -1 <= number <= MAX_POSITION:
        raise _BadParameter(
            f'{name} must be an integer from -1 to {MAX_POSITION}, '
            f'not {value!r}')
    return number


@implementer(IActivityFeedView)
class FeedView(BrowserView):
    """See IActivityFeedView."""

    limit = 1000

    def __call__(self):
        response = self.request.response
        response.setHeader('Content-Type', 'application/json')
        try:
            generation = _position(self.request.form, 'gen')
            index = _position(self.request.form, 'index')
        except _BadParameter as e:
            response.setStatus(400)
            return json.dumps({'error': str(e)})
        log = IActivityLog(self.context, None)
        if log is None:
            response.setStatus(404)
            return json.dumps({'error': 'this object has no activity log'})
        entries = log.newer(generation, index, self.limit)
        cursor = list(entries[-1][:2]) if entries else [generation, index]
        return json.dumps({'entries': [list(entry) for entry in entries],
                           'cursor': cursor})
