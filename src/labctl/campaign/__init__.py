"""labctl.campaign: designed experiments over many cells (DESIGN.md §13).

`load_campaign(path) -> LoadedCampaign` (or `CampaignFileError` with file:line:col problems),
`make_design` / `plan_design` (every point planned before anything is queued), `campaign_schema()`;
`survival` holds the censored-lifetime statistics.
"""

from __future__ import annotations

from typing import Any

from labctl.campaign.loader import CampaignFileError, LoadedCampaign, load_campaign, parse_campaign

__all__ = ["CampaignFileError", "LoadedCampaign", "campaign_schema", "load_campaign", "parse_campaign"]


def campaign_schema() -> dict[str, Any]:
    """JSON Schema of campaign files, for editor autocompletion (pydantic's, with the format's title)."""
    from labctl.campaign.models import Campaign

    schema = Campaign.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "labctl campaign file"
    return schema
