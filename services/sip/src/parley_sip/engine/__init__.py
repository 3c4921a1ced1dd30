"""The SIP user agent: pjsua2 on its own thread, with an asyncio face."""
