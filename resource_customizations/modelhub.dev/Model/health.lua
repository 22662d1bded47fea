-- Argo CD health of a modelhub.dev Model, from its Ready condition (what is served against what is promoted).
-- A revoked stable (served or fallen back) or no eligible version: Degraded. A promoted version still waiting
-- for verification, approval or to appear: Progressing. Serving what is promoted, or promoting nothing: Healthy.
local hs = {}

local function condition(ctype)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

-- Ready=False reasons that resolve by themselves once the version is verified, approved or created.
local waiting = { NotVerified = true, NotApproved = true, VersionNotFound = true, Deleting = true }

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the Model"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition("Ready")
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for the rollout"
  return hs
end
local message = ready.message
if message == nil or message == "" then
  message = tostring(ready.reason)
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message
  return hs
end
if waiting[ready.reason] then
  hs.status = "Progressing"
else
  -- Revoked, FellBack, NoEligibleVersion, WrongModel, ...
  hs.status = "Degraded"
end
hs.message = tostring(ready.reason) .. ": " .. message
return hs
