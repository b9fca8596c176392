"""Readable task names: a 32-digit hex id becomes four words, e.g. ``amber-otter-nine-delta``."""

from __future__ import annotations

from functools import reduce
from operator import xor

WORDS = tuple(
    """
    acorn alder alpha amber anchor angel apple april arctic arrow aspen atlas autumn avocado
    badger bagel bamboo banjo barley basil beacon beaver beetle berry birch bison blossom
    bluebird bongo bramble bravo breeze brick bronze brook buffalo butter cabbage cactus
    camel candle canyon carbon cardinal carrot cedar cello cherry chestnut cinnamon citrus
    clover cobalt coconut comet copper coral cosmos cotton cougar coyote crane cricket
    crystal cypress daisy dancer dawn delta denim desert diamond dolphin dragon drum eagle
    echo eight eleven elm ember emerald falcon fennel fern fifteen fig finch five flamingo
    flint forest fossil four fox freckle frost galaxy garden garlic gecko geyser ginger
    glacier golf granite grape gravel hazel hedgehog helium heron hickory honey horizon
    hotel hydrogen iceberg igloo indigo iris ivory jade jaguar jasmine jasper juliet jupiter
    kale kayak kettle kilo kiwi koala lagoon lantern larch lava lemon lilac lima lime linen
    lion lithium lotus lunar lynx magnet mango maple marble mars meadow melon mercury meteor
    mike mint monkey moose mosaic moss nectar neon neptune nickel nine north november nutmeg
    oak oasis ocean olive onyx opal orange orbit orchid oscar otter owl oxygen panda papaya
    parrot peach pebble pecan pepper pine planet plum polar poppy prairie puffin quartz
    quebec quill rabbit radar raven reef river robin romeo rose ruby saffron sage salmon
    sierra silver sixteen slate snow solar sparrow spruce squirrel stone summer sun swan
    tango tiger timber tomato topaz tulip tundra twelve uniform valley vanilla velvet venus
    violet volcano walnut walrus whiskey willow winter wolf yankee yellow zebra zephyr zinc
    zulu acacia basalt beryl
    """.split()
)


def humanize(hexdigest: str, words: int = 4) -> str:
    """Compress the bytes of ``hexdigest`` into ``words`` words joined by dashes."""
    data = bytes.fromhex(hexdigest)
    size = max(1, len(data) // words)
    segments = [data[i * size : (i + 1) * size] for i in range(words - 1)]
    segments.append(data[(words - 1) * size :])
    return "-".join(WORDS[reduce(xor, segment, 0)] for segment in segments)
