"""The preview's file watcher: a save wakes the pages, and moving the templates folder in the
config moves the watcher with it, even to a folder that does not exist yet."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from newsletter.preview.session import PreviewSession
from newsletter.preview.watch import ChangeFeed, follow_changes
from newsletter.settings import load_settings

WAIT_SECONDS = 20.0


@asynccontextmanager
async def watching(session: PreviewSession) -> AsyncIterator[asyncio.Queue[int]]:
    """follow_changes running as the preview server runs it, with one page listening."""
    feed = ChangeFeed()
    stop = asyncio.Event()
    async with feed.subscription() as queue:
        task = asyncio.create_task(follow_changes(session, feed, stop))
        await asyncio.sleep(0.5)  # let the kernel watches be set up before the first save
        try:
            yield queue
        finally:
            stop.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def next_version(queue: asyncio.Queue[int]) -> int:
    return await asyncio.wait_for(queue.get(), WAIT_SECONDS)


async def quiet(queue: asyncio.Queue[int], seconds: float = 1.5) -> bool:
    """True when no change arrives for a while (what was saved is not watched)."""
    try:
        await asyncio.wait_for(queue.get(), seconds)
    except TimeoutError:
        return True
    return False


def set_templates_dir(project: Path, folder: str) -> None:
    config = project / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    assert 'templates_dir = "templates"' in text
    config.write_text(text.replace('templates_dir = "templates"', f'templates_dir = "{folder}"'), "utf-8")


def touch(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")


def test_a_template_save_and_a_moved_templates_folder_are_both_followed(project: Path) -> None:
    session = PreviewSession(load_settings(project / "newsletter.toml"))

    async def scenario() -> None:
        async with watching(session) as queue:
            touch(project / "templates" / "digest.html")
            await next_version(queue)

            shutil.copytree(project / "templates", project / "theme")
            await drain(queue)
            set_templates_dir(project, "theme")
            await next_version(queue)
            await drain(queue)
            touch(project / "theme" / "digest.html")
            await next_version(queue)
            touch(project / "templates" / "digest.html")  # the old folder is no longer the theme
            assert await quiet(queue)

    asyncio.run(scenario())


def test_a_templates_folder_created_after_the_config_names_it_is_followed(project: Path) -> None:
    session = PreviewSession(load_settings(project / "newsletter.toml"))

    async def scenario() -> None:
        async with watching(session) as queue:
            set_templates_dir(project, "themes/new")
            await next_version(queue)
            await drain(queue)
            assert session.watched()[0] != [project / "themes" / "new"]
            shutil.copytree(project / "templates", project / "themes" / "new")
            await next_version(queue)
            await drain(queue)
            touch(project / "themes" / "new" / "digest.html")
            await next_version(queue)
            assert session.settings().path(session.settings().templates_dir) == project / "themes" / "new"

    asyncio.run(scenario())


async def drain(queue: asyncio.Queue[int]) -> None:
    """Forget the burst of events one change makes (an editor's save is several writes)."""
    while not await quiet(queue, 0.8):
        pass
