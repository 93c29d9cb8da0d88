#!/usr/bin/python3
"""A stand-in for xdg-desktop-portal's ScreenCast interface on a private session bus.

It answers like the real portal would once the person picked a screen in the chooser: the
session, the source selection and the start succeed and hand out one PipeWire stream, the node
given on the command line (the test feeds it a known picture with GStreamer), and a PipeWire
connection to read it through (OpenPipeWireRemote). With --cancel it answers Start as a person
pressing Cancel in the chooser (response 1). `org.between.Test.CloseSessions` does what the
desktop's "Stop sharing" does: the portal closes every session and says so (Session.Closed).

The client side under test is everything real: the app's D-Bus calls and its PipeWire consumer.
"""

import argparse
import os
import socket
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

BUS_NAME = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
SCREENCAST = "org.freedesktop.portal.ScreenCast"
REQUEST = "org.freedesktop.portal.Request"
SESSION = "org.freedesktop.portal.Session"


class Request(dbus.service.Object):
    """One request object; its Response signal carries the result."""

    @dbus.service.signal(REQUEST, signature="ua{sv}")
    def Response(self, response, results):
        pass

    @dbus.service.method(REQUEST)
    def Close(self):
        self.remove_from_connection()


class Session(dbus.service.Object):
    def __init__(self, bus, path, sessions):
        super().__init__(bus, path)
        self.sessions = sessions
        sessions.append(self)

    @dbus.service.signal(SESSION, signature="a{sv}")
    def Closed(self, details):
        pass

    @dbus.service.method(SESSION)
    def Close(self):
        if self in self.sessions:
            self.sessions.remove(self)
        self.remove_from_connection()


def sender_path(sender):
    return sender[1:].replace(".", "_")


class ScreenCast(dbus.service.Object):
    def __init__(self, bus, node, cancel):
        super().__init__(bus, PATH)
        self.bus = bus
        self.node = node
        self.cancel = cancel
        self.sessions = []

    def _request(self, sender, options, response, results):
        token = str(options.get("handle_token", "t"))
        path = f"/org/freedesktop/portal/desktop/request/{sender_path(sender)}/{token}"
        request = Request(self.bus, path)

        def respond():
            # After the method returned, as the real portal does; then the request is gone
            # (scap reuses one token for all its requests).
            request.Response(dbus.UInt32(response), results)
            request.remove_from_connection()
            return False

        GLib.timeout_add(20, respond)
        return dbus.ObjectPath(path)

    @dbus.service.method(SCREENCAST, in_signature="a{sv}", out_signature="o", sender_keyword="sender")
    def CreateSession(self, options, sender=None):
        token = str(options.get("session_handle_token", "s"))
        session = f"/org/freedesktop/portal/desktop/session/{sender_path(sender)}/{token}"
        Session(self.bus, session, self.sessions)
        results = dbus.Dictionary({"session_handle": dbus.String(session)}, signature="sv")
        return self._request(sender, options, 0, results)

    @dbus.service.method(SCREENCAST, in_signature="oa{sv}", out_signature="o", sender_keyword="sender")
    def SelectSources(self, session, options, sender=None):
        return self._request(sender, options, 0, dbus.Dictionary({}, signature="sv"))

    @dbus.service.method(SCREENCAST, in_signature="osa{sv}", out_signature="o", sender_keyword="sender")
    def Start(self, session, parent, options, sender=None):
        if self.cancel:
            return self._request(sender, options, 1, dbus.Dictionary({}, signature="sv"))
        stream = dbus.Struct(
            (dbus.UInt32(self.node), dbus.Dictionary({"source_type": dbus.UInt32(1)}, signature="sv")),
            signature="ua{sv}",
        )
        results = dbus.Dictionary(
            {"streams": dbus.Array([stream], signature="(ua{sv})")}, signature="sv"
        )
        return self._request(sender, options, 0, results)

    @dbus.service.method(SCREENCAST, in_signature="oa{sv}", out_signature="h")
    def OpenPipeWireRemote(self, session, options):
        # The real portal hands out a connection restricted to the session's nodes; this one
        # is a plain connection to the same PipeWire daemon.
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(os.path.join(os.environ["XDG_RUNTIME_DIR"], "pipewire-0"))
        fd = dbus.types.UnixFd(conn.fileno())
        conn.close()
        return fd

    @dbus.service.method("org.between.Test")
    def CloseSessions(self):
        for session in list(self.sessions):
            session.Closed(dbus.Dictionary({}, signature="sv"))
            session.Close()

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, interface, prop):
        return self.GetAll(interface)[prop]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        return dbus.Dictionary(
            {
                "AvailableSourceTypes": dbus.UInt32(1 | 2),
                "AvailableCursorModes": dbus.UInt32(1 | 2),
                "version": dbus.UInt32(4),
            },
            signature="sv",
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", type=int, required=True)
    parser.add_argument("--cancel", action="store_true")
    args = parser.parse_args()
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    name = dbus.service.BusName(BUS_NAME, bus)
    portal = ScreenCast(bus, args.node, args.cancel)
    print("ready", flush=True)
    GLib.MainLoop().run()
    del name, portal


if __name__ == "__main__":
    sys.exit(main())
