"""The simulated API's coins: codes, names, realistic price levels, supplies and metadata.

Why a static table: the walk (`producers.sim.walk`) only moves prices around a reference level;
everything else a coin carries (name, supplies, listing date, categories) is fixed here, so a test
can read a coin's parameters as data. The table holds the ten default codes plus about a hundred
more (benchmarks need >= 100 coins and codes longer than five characters). Values are rounded
ballpark figures chosen for this simulation, not market data.

Columns: code, name, reference price (USD), circulating supply, total supply (None = unknown),
max supply (None = uncapped), volatility class (`walk.DAILY_VOLATILITY`), categories, listing date.
The order of the table is the rank (1 = first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from hashlib import blake2b
from typing import TypeAlias


@dataclass(frozen=True)
class CoinSpec:
    """One simulated coin's fixed parameters."""

    code: str
    name: str
    price: float
    circulating: float
    total: float | None
    max_supply: float | None
    volatility: str
    categories: tuple[str, ...]
    listed: date
    rank: int

    @property
    def listed_ms(self) -> int:
        """Listing date at 00:00 UTC in epoch ms (the origin of `age`)."""
        return int(
            datetime(self.listed.year, self.listed.month, self.listed.day, tzinfo=timezone.utc).timestamp() * 1000
        )

    @property
    def color(self) -> str:
        """A stable brand-like colour derived from the code."""
        return "#" + blake2b(self.code.encode(), digest_size=3).hexdigest()


_S, _MA, _L, _M, _ME = "stable", "major", "large", "mid", "meme"

# code, name, price, circulating, total, max, class, categories, listed (YYYY-MM-DD)
_Row: TypeAlias = tuple[str, str, float, float, float | None, float | None, str, tuple[str, ...], str]
_TABLE: tuple[_Row, ...] = (
    ("BTC", "Bitcoin", 65000.0, 19.7e6, 19.7e6, 21e6, _MA, ("pow", "store_of_value"), "2010-07-17"),
    ("ETH", "Ethereum", 3200.0, 120.2e6, 120.2e6, None, _MA, ("smart_contract_platforms",), "2015-08-07"),
    ("USDT", "Tether", 1.0, 110e9, 112e9, None, _S, ("stablecoins",), "2015-02-25"),
    ("BNB", "BNB", 580.0, 146e6, 146e6, 200e6, _L, ("exchange_tokens",), "2017-07-25"),
    ("SOL", "Solana", 150.0, 460e6, 580e6, None, _L, ("smart_contract_platforms",), "2020-04-10"),
    ("USDC", "USD Coin", 1.0, 33e9, 33e9, None, _S, ("stablecoins",), "2018-10-08"),
    ("XRP", "XRP", 0.55, 55e9, 99.99e9, 100e9, _L, ("payments",), "2013-08-04"),
    ("STETH", "Lido Staked Ether", 3200.0, 9.5e6, 9.5e6, None, _MA, ("liquid_staking",), "2020-12-18"),
    ("DOGE", "Dogecoin", 0.13, 145e9, 145e9, None, _ME, ("meme", "pow"), "2013-12-15"),
    ("TON", "Toncoin", 6.5, 2.5e9, 5.1e9, None, _L, ("smart_contract_platforms",), "2021-08-26"),
    ("ADA", "Cardano", 0.45, 35e9, 45e9, 45e9, _L, ("smart_contract_platforms",), "2017-10-01"),
    ("TRX", "TRON", 0.12, 87e9, 87e9, None, _L, ("smart_contract_platforms",), "2017-09-13"),
    ("AVAX", "Avalanche", 30.0, 390e6, 440e6, 720e6, _L, ("smart_contract_platforms",), "2020-09-22"),
    ("WSTETH", "Wrapped stETH", 3750.0, 3.4e6, 3.4e6, None, _MA, ("liquid_staking", "wrapped"), "2021-02-09"),
    ("SHIB", "Shiba Inu", 0.000018, 589e12, 589e12, None, _ME, ("meme",), "2020-08-01"),
    ("WBTC", "Wrapped Bitcoin", 65000.0, 154e3, 154e3, None, _MA, ("wrapped",), "2019-01-30"),
    ("DOT", "Polkadot", 6.5, 1.4e9, 1.45e9, None, _L, ("interoperability",), "2020-08-19"),
    ("LINK", "Chainlink", 14.0, 587e6, 1e9, 1e9, _L, ("oracles",), "2017-09-20"),
    ("BCH", "Bitcoin Cash", 450.0, 19.7e6, 19.7e6, 21e6, _L, ("pow", "payments"), "2017-08-01"),
    ("NEAR", "NEAR Protocol", 6.0, 1.07e9, 1.18e9, None, _L, ("smart_contract_platforms",), "2020-10-14"),
    ("MATIC", "Polygon", 0.7, 9.3e9, 10e9, 10e9, _L, ("layer_2",), "2019-04-28"),
    ("LTC", "Litecoin", 80.0, 74.5e6, 74.5e6, 84e6, _L, ("pow", "payments"), "2013-04-28"),
    ("DAI", "Dai", 1.0, 5.3e9, 5.3e9, None, _S, ("stablecoins", "defi"), "2019-11-18"),
    ("UNI", "Uniswap", 9.0, 600e6, 1e9, 1e9, _L, ("defi", "dex"), "2020-09-17"),
    ("ICP", "Internet Computer", 11.0, 464e6, 517e6, None, _M, ("smart_contract_platforms",), "2021-05-10"),
    ("LEO", "UNUS SED LEO", 5.8, 925e6, 985e6, None, _M, ("exchange_tokens",), "2019-05-21"),
    ("PEPE", "Pepe", 0.000011, 420.69e12, 420.69e12, 420.69e12, _ME, ("meme",), "2023-04-17"),
    ("ETC", "Ethereum Classic", 26.0, 147e6, 147e6, 210.7e6, _M, ("pow", "smart_contract_platforms"), "2016-07-24"),
    ("FDUSD", "First Digital USD", 1.0, 2.5e9, 2.5e9, None, _S, ("stablecoins",), "2023-06-01"),
    ("APT", "Aptos", 9.0, 420e6, 1.08e9, None, _M, ("smart_contract_platforms",), "2022-10-18"),
    ("KAS", "Kaspa", 0.15, 23.6e9, 23.6e9, 28.7e9, _M, ("pow",), "2021-11-07"),
    ("RENDER", "Render", 8.0, 388e6, 532e6, 644e6, _M, ("ai", "depin"), "2020-06-11"),
    ("HBAR", "Hedera", 0.09, 35.7e9, 50e9, 50e9, _M, ("smart_contract_platforms",), "2019-09-16"),
    ("XLM", "Stellar", 0.1, 29e9, 50e9, 50e9, _M, ("payments",), "2014-08-05"),
    ("ATOM", "Cosmos", 8.0, 390e6, 390e6, None, _M, ("interoperability",), "2019-03-14"),
    ("ARB", "Arbitrum", 1.0, 2.65e9, 10e9, 10e9, _M, ("layer_2",), "2023-03-23"),
    ("XMR", "Monero", 160.0, 18.4e6, 18.4e6, None, _M, ("privacy", "pow"), "2014-05-21"),
    ("OKB", "OKB", 45.0, 60e6, 300e6, 300e6, _M, ("exchange_tokens",), "2019-04-30"),
    ("FIL", "Filecoin", 5.8, 560e6, 1.96e9, 1.96e9, _M, ("storage",), "2020-10-15"),
    ("IMX", "Immutable", 2.0, 1.5e9, 2e9, 2e9, _M, ("gaming", "layer_2"), "2021-06-24"),
    ("MNT", "Mantle", 0.9, 3.25e9, 6.2e9, None, _M, ("layer_2",), "2023-07-17"),
    ("CRO", "Cronos", 0.12, 26.9e9, 30e9, 30e9, _M, ("exchange_tokens",), "2018-12-14"),
    ("STX", "Stacks", 2.0, 1.46e9, 1.46e9, 1.818e9, _M, ("layer_2",), "2019-10-28"),
    ("OP", "Optimism", 2.5, 1.07e9, 4.29e9, 4.29e9, _M, ("layer_2",), "2022-06-01"),
    ("VET", "VeChain", 0.035, 72.7e9, 86.7e9, 86.7e9, _M, ("supply_chain",), "2018-07-25"),
    ("INJ", "Injective", 25.0, 93e6, 100e6, None, _M, ("defi",), "2020-10-21"),
    ("TAO", "Bittensor", 350.0, 6.8e6, 6.8e6, 21e6, _M, ("ai",), "2023-03-06"),
    ("GRT", "The Graph", 0.25, 9.5e9, 10.7e9, None, _M, ("infrastructure",), "2020-12-17"),
    ("MKR", "Maker", 2500.0, 920e3, 977e3, 1.005e6, _M, ("defi", "lending"), "2017-11-25"),
    ("AAVE", "Aave", 95.0, 14.8e6, 16e6, 16e6, _M, ("defi", "lending"), "2020-10-02"),
    ("SUI", "Sui", 1.0, 2.4e9, 10e9, 10e9, _M, ("smart_contract_platforms",), "2023-05-03"),
    ("WIF", "dogwifhat", 2.5, 998.9e6, 998.9e6, 998.9e6, _ME, ("meme",), "2023-12-13"),
    ("FTM", "Fantom", 0.7, 2.8e9, 3.17e9, 3.17e9, _M, ("smart_contract_platforms",), "2018-10-30"),
    ("THETA", "Theta Network", 1.8, 1e9, 1e9, 1e9, _M, ("media",), "2018-01-17"),
    ("RUNE", "THORChain", 5.0, 335e6, 425e6, 500e6, _M, ("defi", "dex"), "2019-07-23"),
    ("AR", "Arweave", 30.0, 65.5e6, 66e6, 66e6, _M, ("storage",), "2020-05-27"),
    ("ALGO", "Algorand", 0.17, 8.1e9, 10e9, 10e9, _M, ("smart_contract_platforms",), "2019-06-20"),
    ("FLOKI", "FLOKI", 0.00018, 9.6e12, 10e12, 10e12, _ME, ("meme",), "2021-07-05"),
    ("BONK", "Bonk", 0.00002, 68e12, 93e12, None, _ME, ("meme",), "2022-12-25"),
    ("SEI", "Sei", 0.4, 3e9, 10e9, 10e9, _M, ("smart_contract_platforms",), "2023-08-15"),
    ("TIA", "Celestia", 7.0, 190e6, 1.05e9, None, _M, ("infrastructure",), "2023-10-31"),
    ("FLOW", "Flow", 0.7, 1.5e9, 1.5e9, None, _M, ("smart_contract_platforms",), "2021-01-27"),
    ("GALA", "Gala", 0.025, 35e9, 35e9, None, _M, ("gaming",), "2020-09-16"),
    ("PYTH", "Pyth Network", 0.35, 3.6e9, 10e9, 10e9, _M, ("oracles",), "2023-11-20"),
    ("JUP", "Jupiter", 0.9, 1.35e9, 10e9, 10e9, _M, ("defi", "dex"), "2024-01-31"),
    ("AXS", "Axie Infinity", 6.5, 145e6, 270e6, 270e6, _M, ("gaming",), "2020-11-04"),
    ("QNT", "Quant", 75.0, 14.5e6, 14.6e6, 14.6e6, _M, ("interoperability",), "2018-08-09"),
    ("EGLD", "MultiversX", 35.0, 27e6, 27e6, 31.4e6, _M, ("smart_contract_platforms",), "2020-09-04"),
    ("SAND", "The Sandbox", 0.35, 2.27e9, 3e9, 3e9, _M, ("gaming", "metaverse"), "2020-08-14"),
    ("XTZ", "Tezos", 0.8, 1e9, 1e9, None, _M, ("smart_contract_platforms",), "2017-10-02"),
    ("BSV", "Bitcoin SV", 50.0, 19.7e6, 19.7e6, 21e6, _M, ("pow",), "2018-11-09"),
    ("MANA", "Decentraland", 0.35, 1.9e9, 2.19e9, 2.19e9, _M, ("metaverse",), "2017-09-17"),
    ("NEO", "Neo", 11.0, 70.5e6, 100e6, 100e6, _M, ("smart_contract_platforms",), "2016-09-09"),
    ("CHZ", "Chiliz", 0.08, 8.8e9, 8.89e9, 8.89e9, _M, ("fan_tokens",), "2019-07-01"),
    ("KCS", "KuCoin Token", 9.5, 96e6, 142e6, 170e6, _M, ("exchange_tokens",), "2017-10-24"),
    ("EOS", "EOS", 0.55, 1.5e9, 1.5e9, 2.1e9, _M, ("smart_contract_platforms",), "2017-07-01"),
    ("CFX", "Conflux", 0.15, 4.3e9, 5.3e9, None, _M, ("smart_contract_platforms",), "2020-11-02"),
    ("USDD", "USDD", 1.0, 730e6, 730e6, None, _S, ("stablecoins",), "2022-05-05"),
    ("TUSD", "TrueUSD", 1.0, 490e6, 490e6, None, _S, ("stablecoins",), "2018-03-06"),
    ("PYUSD", "PayPal USD", 1.0, 400e6, 400e6, None, _S, ("stablecoins",), "2023-08-07"),
    ("SNX", "Synthetix", 1.8, 330e6, 330e6, None, _M, ("defi", "derivatives"), "2018-03-14"),
    ("CRV", "Curve DAO Token", 0.3, 1.2e9, 2.2e9, 3.03e9, _M, ("defi", "dex"), "2020-08-14"),
    ("LDO", "Lido DAO", 1.5, 890e6, 1e9, 1e9, _M, ("defi", "liquid_staking"), "2021-01-05"),
    ("ENS", "Ethereum Name Service", 20.0, 33e6, 100e6, 100e6, _M, ("infrastructure",), "2021-11-09"),
    ("COMP", "Compound", 50.0, 8.7e6, 10e6, 10e6, _M, ("defi", "lending"), "2020-06-16"),
    ("1INCH", "1inch", 0.35, 1.25e9, 1.5e9, 1.5e9, _M, ("defi", "dex"), "2020-12-25"),
    ("ZEC", "Zcash", 22.0, 16.3e6, 16.3e6, 21e6, _M, ("privacy", "pow"), "2016-10-29"),
    ("DASH", "Dash", 25.0, 12e6, 12e6, 18.9e6, _M, ("payments", "pow"), "2014-02-14"),
    ("IOTA", "IOTA", 0.17, 3.3e9, 4.6e9, 4.6e9, _M, ("iot",), "2017-06-13"),
    ("KAVA", "Kava", 0.45, 1.08e9, 1.08e9, None, _M, ("defi",), "2019-10-23"),
    ("MINA", "Mina", 0.55, 1.15e9, 1.18e9, None, _M, ("smart_contract_platforms",), "2021-06-01"),
    ("GMX", "GMX", 25.0, 9.7e6, 9.7e6, 13.25e6, _M, ("defi", "derivatives"), "2021-09-01"),
    ("BLUR", "Blur", 0.2, 2e9, 3e9, 3e9, _M, ("nft",), "2023-02-14"),
    ("ORDI", "ORDI", 35.0, 21e6, 21e6, 21e6, _ME, ("brc20",), "2023-03-08"),
    ("APE", "ApeCoin", 0.9, 620e6, 1e9, 1e9, _ME, ("nft", "meme"), "2022-03-17"),
    ("WLD", "Worldcoin", 2.2, 450e6, 10e9, 10e9, _M, ("identity", "ai"), "2023-07-24"),
    ("CAKE", "PancakeSwap", 2.0, 275e6, 380e6, 450e6, _M, ("defi", "dex"), "2020-09-29"),
    ("ROSE", "Oasis Network", 0.08, 6.7e9, 10e9, 10e9, _M, ("privacy",), "2020-11-19"),
    ("ZIL", "Zilliqa", 0.018, 18.5e9, 21e9, 21e9, _M, ("smart_contract_platforms",), "2018-01-25"),
    ("ENJ", "Enjin Coin", 0.2, 1.77e9, 1.87e9, 2e9, _M, ("gaming", "nft"), "2017-11-01"),
    ("BAT", "Basic Attention Token", 0.2, 1.49e9, 1.5e9, 1.5e9, _M, ("advertising",), "2017-06-01"),
    ("FET", "Fetch.ai", 1.3, 2.5e9, 2.63e9, 2.63e9, _M, ("ai",), "2019-03-02"),
    ("JASMY", "JasmyCoin", 0.025, 48e9, 50e9, 50e9, _M, ("iot",), "2021-04-17"),
    ("GNO", "Gnosis", 280.0, 2.6e6, 3e6, 3e6, _M, ("infrastructure",), "2017-05-01"),
    ("RETH", "Rocket Pool ETH", 3550.0, 500e3, 500e3, None, _MA, ("liquid_staking",), "2021-11-08"),
    ("WETH", "Wrapped Ether", 3200.0, 3e6, 3e6, None, _MA, ("wrapped",), "2017-12-18"),
    ("POPCAT", "Popcat", 0.6, 980e6, 980e6, 980e6, _ME, ("meme",), "2023-12-16"),
    ("FARTCOIN", "Fartcoin", 0.5, 1e9, 1e9, 1e9, _ME, ("meme", "ai"), "2024-10-18"),
)


def _build() -> dict[str, CoinSpec]:
    coins: dict[str, CoinSpec] = {}
    for rank, (code, name, price, circ, total, max_supply, vol, cats, listed) in enumerate(_TABLE, 1):
        coins[code] = CoinSpec(code, name, price, circ, total, max_supply, vol, cats, date.fromisoformat(listed), rank)
    return coins


COINS: dict[str, CoinSpec] = _build()
"""Every simulated coin by code, in rank order."""
