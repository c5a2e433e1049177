"""A 2-D grid world of rooms seen through a local patch, with optional noise: the world to discover.

After the 2-D navigation mazes of Azar et al. 2019 ("World Discovery Models",
arXiv:1902.07685, section 5): the agent moves in a maze of rooms and sees only the cells around
it; part of the maze may show white noise (a new random value each step, a "noisy TV") or
structured noise (a dot that moves at random on a screen), which a curious agent that rewards
its own prediction error keeps watching.

Cells (the observation's values, ``LEVELS = 6``): ``FLOOR`` 0, ``WALL`` 1, landmarks ``2`` and
``3`` (fixed marks on the floor, or a colour drawn per episode with ``random_landmarks``), and the
screen's values ``4``/``5``. The screen (``T`` in a layout) is not walkable; with ``noise="none"``
it shows walls, ``"white"`` a uniform value in ``0..5`` per cell and step, ``"structured"`` one
dot (``4``) on ``5`` moving to a random neighbouring screen cell each step.

Spaces: observation ``(n_envs, view, view)`` int64 in ``0..LEVELS-1``, the agent at the centre,
outside the grid read as ``WALL``; action ``(n_envs,)`` int64 in ``0..3`` (up, down, left,
right); moving into a wall or the screen leaves the agent where it was. Episodes last
``episode_length`` steps and start at a random floor cell (or ``start``). Everything is numpy and
deterministic under ``seed``; no dependency on an RL library (:meth:`GridWorld.spaces` says
what the spaces are, in words and numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FLOOR, WALL, LANDMARK_A, LANDMARK_B, DOT, SCREEN = 0, 1, 2, 3, 4, 5
LEVELS = 6
#: Row and column change of each action: up, down, left, right.
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])
N_ACTIONS = len(MOVES)
NOISE = ("none", "white", "structured")

#: Four rooms joined by doors, a landmark in two of them and a 3x3 screen in the top-right one.
FOUR_ROOMS = (
    "#############",
    "#.....#.....#",
    "#.a...#.TTT.#",
    "#.......TTT.#",
    "#.....#.TTT.#",
    "#.....#.....#",
    "##.####.....#",
    "#.....###.###",
    "#.....#.....#",
    "#.....#...b.#",
    "#...........#",
    "#.....#.....#",
    "#############",
)
#: One small room with a 2x2 screen in a corner and a landmark: for tests.
ONE_ROOM = (
    "#######",
    "#TT...#",
    "#TT...#",
    "#.....#",
    "#...a.#",
    "#.....#",
    "#######",
)
LAYOUTS = {"four-rooms": FOUR_ROOMS, "one-room": ONE_ROOM}


@dataclass(frozen=True)
class Spaces:
    """The observation and action spaces of a :class:`GridWorld`."""

    observation_shape: tuple[int, int]
    observation_levels: int
    n_actions: int
    description: str


class GridWorld:
    """``n_envs`` copies of one maze, stepped together (numpy), deterministic under ``seed``.

    Arguments:
        layout: ``"four-rooms"``, ``"one-room"`` or rows of text (``#`` wall, ``.`` floor,
            ``a``/``b`` landmarks, ``T`` screen).
        view: side of the observed patch (odd).
        noise: what the screen shows: ``"none"``, ``"white"`` or ``"structured"``.
        n_envs: agents moving in copies of the maze at once.
        episode_length: steps of an episode.
        random_landmarks: draw each landmark's value (2 or 3) per episode and copy, so that
            the map holds something to discover besides the agent's position.
        start: the cell (row, column) every episode starts from; a random floor cell if None.
        seed: seeds every draw (starts, noise, landmarks).
    """

    def __init__(
        self,
        layout: str | Sequence[str] = "four-rooms",
        view: int = 5,
        noise: str = "none",
        n_envs: int = 1,
        episode_length: int = 100,
        random_landmarks: bool = False,
        start: tuple[int, int] | None = None,
        seed: int = 0,
    ) -> None:
        rows = LAYOUTS[layout] if isinstance(layout, str) and layout in LAYOUTS else layout
        if isinstance(rows, str) or len({len(r) for r in rows}) != 1:
            raise ValueError(
                f"layout must be one of {sorted(LAYOUTS)} or rows of equal length "
                f"made of '#', '.', 'a', 'b', 'T'; got {layout!r}"
            )
        if noise not in NOISE:
            raise ValueError(f"noise must be one of {NOISE}, got {noise!r}")
        if view < 1 or view % 2 == 0:
            raise ValueError(
                f"view must be an odd number >= 1 (the agent at the centre), got {view}"
            )
        if n_envs < 1 or episode_length < 1:
            raise ValueError("n_envs and episode_length must be >= 1")
        chars = np.array([list(r) for r in rows])
        if not set(np.unique(chars)) <= set("#.abT"):
            raise ValueError("a layout holds only '#', '.', 'a', 'b' and 'T'")
        self.view, self.noise, self.n_envs = view, noise, n_envs
        self.episode_length, self.random_landmarks = episode_length, random_landmarks
        self.rng = np.random.default_rng(seed)
        self.walls = chars == "#"
        self.screen = chars == "T"
        self.landmarks = np.argwhere(np.isin(chars, ["a", "b"]))
        base = np.full(chars.shape, FLOOR)
        base[self.walls | self.screen] = WALL
        base[chars == "a"], base[chars == "b"] = LANDMARK_A, LANDMARK_B
        self.base = base
        self.floor = ~(self.walls | self.screen)
        self.floor_cells = np.argwhere(self.floor)
        if start is not None and not self.floor[tuple(start)]:
            raise ValueError(f"start {start} is not a floor cell of the layout")
        self.start = start
        self.screen_cells = np.argwhere(self.screen)
        r = view // 2
        self._pad = r
        self.maps = np.repeat(base[None], n_envs, 0)
        self.positions = np.zeros((n_envs, 2), dtype=np.int64)
        self.t = 0
        self._dot = np.zeros(n_envs, dtype=np.int64)
        self.reset()

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns of the maze."""
        return self.walls.shape

    def spaces(self) -> Spaces:
        """The observation and action spaces (see the module docstring)."""
        v = self.view
        return Spaces(
            (v, v),
            LEVELS,
            N_ACTIONS,
            f"observation: (n_envs, {v}, {v}) int64 in 0..{LEVELS - 1} (0 floor, 1 "
            "wall, 2-3 landmarks, 4-5 screen), the agent at the centre; action: "
            "(n_envs,) int64 in 0..3 (up, down, left, right)",
        )

    def reset(self) -> np.ndarray:
        """Start an episode in every copy: a random floor cell each; the first observation."""
        self.t = 0
        self.maps = np.repeat(self.base[None], self.n_envs, 0)
        if self.random_landmarks and len(self.landmarks):
            values = self.rng.integers(
                LANDMARK_A, LANDMARK_B + 1, (self.n_envs, len(self.landmarks))
            )
            self.maps[:, self.landmarks[:, 0], self.landmarks[:, 1]] = values
        self.positions = self.floor_cells[self.rng.integers(0, len(self.floor_cells), self.n_envs)]
        if self.start is not None:
            self.positions[:] = self.start
        if len(self.screen_cells):
            self._dot = self.rng.integers(0, len(self.screen_cells), self.n_envs)
        self._draw_screen()
        return self.observe()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, bool]:
        """Move every agent (``(n_envs,)`` actions 0..3); the new observations and whether the
        episode ended."""
        actions = np.asarray(actions)
        if actions.shape != (self.n_envs,) or actions.min() < 0 or actions.max() >= N_ACTIONS:
            raise ValueError(
                f"actions must be ({self.n_envs},) integers in 0..{N_ACTIONS - 1}, got {actions!r}"
            )
        target = self.positions + MOVES[actions]
        free = self.floor[target[:, 0], target[:, 1]]
        self.positions = np.where(free[:, None], target, self.positions)
        self.t += 1
        self._draw_screen()
        return self.observe(), self.t >= self.episode_length

    def _draw_screen(self) -> None:
        """Draw the screen's values for this step (nothing to draw without noise)."""
        cells = self.screen_cells
        if self.noise == "none" or not len(cells):
            return
        rows, cols = cells[:, 0], cells[:, 1]
        if self.noise == "white":
            self.maps[:, rows, cols] = self.rng.integers(0, LEVELS, (self.n_envs, len(cells)))
            return
        # structured: the dot moves to a random screen cell next to it (or stays)
        here = cells[self._dot]
        dist = np.abs(cells[None] - here[:, None]).sum(-1)  # (n_envs, n_cells)
        near = dist <= 1
        pick = self.rng.random(near.shape) * near
        self._dot = pick.argmax(1)
        self.maps[:, rows, cols] = SCREEN
        self.maps[np.arange(self.n_envs), rows[self._dot], cols[self._dot]] = DOT

    def observe(self) -> np.ndarray:
        """The patch around each agent, ``(n_envs, view, view)``, ``WALL`` outside the maze."""
        r = self._pad
        padded = np.pad(self.maps, ((0, 0), (r, r), (r, r)), constant_values=WALL)
        offsets = np.arange(-r, r + 1)
        rows = self.positions[:, 0, None] + r + offsets[None]
        cols = self.positions[:, 1, None] + r + offsets[None]
        env = np.arange(self.n_envs)[:, None, None]
        return padded[env, rows[:, :, None], cols[:, None, :]].astype(np.int64)

    def position_index(self) -> np.ndarray:
        """Each agent's cell as an index into ``floor_cells``, ``(n_envs,)``."""
        flat = self.positions[:, 0] * self.shape[1] + self.positions[:, 1]
        lookup = np.full(self.walls.size, -1)
        lookup[self.floor_cells[:, 0] * self.shape[1] + self.floor_cells[:, 1]] = np.arange(
            len(self.floor_cells)
        )
        return lookup[flat]

    def noise_in_view(self) -> np.ndarray:
        """Number of screen cells in each agent's patch, ``(n_envs,)``."""
        if not len(self.screen_cells):
            return np.zeros(self.n_envs, dtype=np.int64)
        near = np.abs(self.screen_cells[None] - self.positions[:, None]).max(-1) <= self._pad
        return near.sum(1)
