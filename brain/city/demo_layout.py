"""The demo city's plan: where it is, its districts, roads, corridors, owners and hazard sources.

These are the hand-written facts :mod:`brain.city.demo_gen` lays out into ``brain/city/demo/``
(geometry, segments, sensors); :mod:`brain.city.synth` reuses the sensor owners. Distances are in
local metres from the south-west corner; ``KX``/``KY`` convert them to degrees.

Example:
    >>> [d[0] for d in DISTRICTS], CORRIDORS[0][:2]
    (['nanhu', 'gangkou', 'xiyuan', 'dongqiao'], ('jiefang', 'JF'))
    >>> round(WIDTH_M / KX, 4) > 0.1  # the city spans over a tenth of a degree of longitude
    True
"""
from __future__ import annotations

import math

from brain.city.geo import EARTH_RADIUS_M

SEED = 20261121
CENTER = (120.15, 30.27)
WIDTH_M = 11_500.0
HEIGHT_M = 10_000.0
CITY_CODE = "339900"  # fictional prefix 3399 (33 = Zhejiang; 99 is unused by GB/T 2260)

KX = math.cos(math.radians(CENTER[1])) * math.pi / 180 * EARTH_RADIUS_M  # metres per degree lon
KY = math.pi / 180 * EARTH_RADIUS_M  # metres per degree lat
LON0 = CENTER[0] - WIDTH_M / 2 / KX
LAT0 = CENTER[1] - HEIGHT_M / 2 / KY

# (id, name, code suffix, cell prefix, street names, noise-class weights for 1, 2, 3, 4a)
DISTRICTS = [
    ("nanhu", "南湖区 Nanhu", "05", "NH", ["湖滨街道", "清波街道", "南星街道"], (0.35, 0.45, 0.10, 0.10)),
    ("gangkou", "港口区 Gangkou", "06", "GK", ["港湾街道", "临江街道"], (0.05, 0.25, 0.55, 0.15)),
    ("xiyuan", "西苑区 Xiyuan", "02", "XY", ["西溪街道", "古荡街道", "翠苑街道"], (0.50, 0.35, 0.0, 0.15)),
    ("dongqiao", "东桥区 Dongqiao", "03", "DQ", ["武林街道", "潮鸣街道"], (0.15, 0.50, 0.05, 0.30)),
]

# Roads: (code, name, class). E-W roads from south to north, N-S roads from west to east.
EW_ROADS = [
    ("NW", "Nanhuan Rd", "secondary"),
    ("JF", "Jiefang Rd", "arterial"),
    ("DS", "Desheng Expy", "expressway"),
    ("QC", "Qingchun Rd", "arterial"),
    ("WY", "Wenyi Rd", "arterial"),
    ("BS", "Beishan St", "secondary"),
]
NS_ROADS = [
    ("TM", "Tianmu Rd", "arterial"),
    ("XX", "Xixi St", "secondary"),
    ("ZH", "Zhonghe Rd", "arterial"),
    ("YA", "Yan'an Rd", "arterial"),
    ("ST", "Shangtang Expy", "expressway"),
    ("QT", "Qiutao Rd", "arterial"),
    ("JB", "Jiangbin St", "secondary"),
]
MINOR_STREETS = [
    "Baita Ln", "Huaguang Ln", "Liuying Ln", "Meihua Ln", "Qianchao Ln", "Songmu Ln", "Taoyuan Ln",
    "Wuyi Ln", "Xinghe Ln", "Yuquan Ln", "Zhuyuan Ln", "Anle Ln",
]
# Signalised corridors: (id, road code, range of crossing indices it spans, blocks per gap, speeds)
CORRIDORS = [
    ("jiefang", "JF", (0, 3), 3, 45.0, 42.0),
    ("qiutao", "QT", (3, 5), 4, 40.0, 45.0),
]
FREE_FLOW_KMH = {"expressway": 80.0, "arterial": 55.0, "secondary": 40.0}
LANES = {"expressway": (3, 4), "arterial": (2, 3), "secondary": (1, 2)}

OWNERS = {
    "loop": "交警支队", "video": "交警支队", "radar": "交警支队", "probe": "交通运输局",
    "air": "生态环境局", "noise": "生态环境局", "water_quality": "生态环境局", "weather": "气象局",
    "grid_inspector": "城管局", "hotline_12345": "12345热线中心", "citizen_app": "城市运行管理中心",
    "utility_power": "供电公司", "utility_water": "水务集团", "utility_gas": "燃气集团",
    "utility_heat": "热力公司", "cad_police": "公安局110指挥中心", "cad_fire": "消防救援支队119指挥中心",
    "cad_medical": "急救中心120", "cad_emergency_mgmt": "应急管理局", "hazard": "应急管理局",
}

HAZARDS = [
    # id, name, kind, district, unit, alarm_high, valid range, sensors
    ("HZ1", "临江LNG储配站 Linjiang LNG depot", "lng_storage", "gangkou", "%", 90.0, (0.0, 100.0), 3),
    ("HZ2", "港湾化工仓库 Harbour chemical warehouse", "chemical_storage", "gangkou", "%LEL", 25.0, (0.0, 100.0), 3),
    ("HZ3", "南星水厂液氯库 Nanxing water-plant chlorine store", "chlorine_store", "nanhu", "ppm", 1.0, (0.0, 20.0), 2),
    ("HZ4", "潮鸣区域锅炉房 Chaoming boiler house", "boiler", "dongqiao", "MPa", 1.25, (0.0, 2.5), 2),
]
