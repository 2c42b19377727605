<?xml version="1.0" encoding="UTF-8"?>
<!-- The agent's own rendering of a CDA R2 level 3 document into HTML (docs/cda-viewer.md).

     Written for this project (no stylesheet copied). It builds every output element by name
     (never xsl:copy / copy-of / xsl:element with a name taken from the document), copies no
     attribute of the document except numbers (colspan, rowspan) and anchors it checks, and
     emits no script, no style, no link: the one stylesheet link is added in Python after the
     sanitiser (agent.core.cda_view). Labels come in as parameters (the agent's catalogue). -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:h="urn:hl7-org:v3"
    exclude-result-prefixes="h">
  <xsl:output method="html" encoding="UTF-8" indent="no"/>

  <xsl:param name="l-patient" select="'Patient'"/>
  <xsl:param name="l-born" select="'Born on'"/>
  <xsl:param name="l-ins" select="'INS'"/>
  <xsl:param name="l-author" select="'Author'"/>
  <xsl:param name="l-date" select="'Date'"/>
  <xsl:param name="l-custodian" select="'Custodian'"/>
  <xsl:param name="l-authenticator" select="'Legal authenticator'"/>
  <xsl:param name="l-type" select="'Type'"/>
  <xsl:param name="l-contact" select="'Emergency contact'"/>
  <xsl:param name="l-image-omitted" select="'Image not shown'"/>
  <xsl:param name="l-pdf-copy" select="'PDF copy attached to the document'"/>
  <xsl:param name="l-link" select="'link'"/>

  <xsl:key name="media" match="h:observationMedia | h:regionOfInterest" use="@ID"/>

  <xsl:template match="/">
    <xsl:apply-templates select="h:ClinicalDocument"/>
  </xsl:template>

  <xsl:template match="h:ClinicalDocument">
    <html lang="fr">
      <head>
        <meta charset="utf-8"/>
        <title><xsl:value-of select="h:title"/></title>
      </head>
      <body class="cda">
        <header class="cda-header">
          <h1><xsl:value-of select="h:title"/></h1>
          <dl>
            <xsl:call-template name="row">
              <xsl:with-param name="label" select="$l-type"/>
              <xsl:with-param name="value" select="h:code/@displayName"/>
            </xsl:call-template>
            <xsl:call-template name="row">
              <xsl:with-param name="label" select="$l-date"/>
              <xsl:with-param name="value">
                <xsl:call-template name="date">
                  <xsl:with-param name="ts" select="h:effectiveTime/@value"/>
                </xsl:call-template>
              </xsl:with-param>
            </xsl:call-template>
            <xsl:for-each select="h:recordTarget/h:patientRole">
              <xsl:call-template name="row">
                <xsl:with-param name="label" select="$l-patient"/>
                <xsl:with-param name="value">
                  <xsl:call-template name="name">
                    <xsl:with-param name="n" select="h:patient/h:name[1]"/>
                  </xsl:call-template>
                </xsl:with-param>
              </xsl:call-template>
              <xsl:call-template name="row">
                <xsl:with-param name="label" select="$l-born"/>
                <xsl:with-param name="value">
                  <xsl:call-template name="date">
                    <xsl:with-param name="ts" select="h:patient/h:birthTime/@value"/>
                  </xsl:call-template>
                </xsl:with-param>
              </xsl:call-template>
              <xsl:call-template name="row">
                <xsl:with-param name="label" select="$l-ins"/>
                <xsl:with-param name="value"
                    select="h:id[starts-with(@root, '1.2.250.1.213.1.4.')][1]/@extension"/>
              </xsl:call-template>
            </xsl:for-each>
            <xsl:for-each select="h:author[1]/h:assignedAuthor">
              <xsl:call-template name="row">
                <xsl:with-param name="label" select="$l-author"/>
                <xsl:with-param name="value">
                  <xsl:call-template name="name">
                    <xsl:with-param name="n" select="h:assignedPerson/h:name[1]"/>
                  </xsl:call-template>
                  <xsl:if test="h:representedOrganization/h:name">
                    <xsl:text> — </xsl:text>
                    <xsl:value-of select="h:representedOrganization/h:name"/>
                  </xsl:if>
                </xsl:with-param>
              </xsl:call-template>
            </xsl:for-each>
            <xsl:call-template name="row">
              <xsl:with-param name="label" select="$l-authenticator"/>
              <xsl:with-param name="value">
                <xsl:call-template name="name">
                  <xsl:with-param name="n"
                      select="h:legalAuthenticator/h:assignedEntity/h:assignedPerson/h:name[1]"/>
                </xsl:call-template>
              </xsl:with-param>
            </xsl:call-template>
            <xsl:call-template name="row">
              <xsl:with-param name="label" select="$l-custodian"/>
              <xsl:with-param name="value" select="h:custodian//h:representedCustodianOrganization/h:name"/>
            </xsl:call-template>
            <xsl:for-each select="h:informant/h:relatedEntity[@classCode = 'ECON']
                                  | h:participant[@typeCode = 'IND']/h:associatedEntity[@classCode = 'ECON']">
              <xsl:call-template name="row">
                <xsl:with-param name="label" select="$l-contact"/>
                <xsl:with-param name="value">
                  <xsl:call-template name="name">
                    <xsl:with-param name="n" select="(h:relatedPerson | h:associatedPerson)/h:name[1]"/>
                  </xsl:call-template>
                  <xsl:if test="h:code/@displayName">
                    <xsl:text> (</xsl:text><xsl:value-of select="h:code/@displayName"/><xsl:text>)</xsl:text>
                  </xsl:if>
                  <xsl:for-each select="h:telecom[@value]">
                    <xsl:text> </xsl:text>
                    <xsl:value-of select="substring-after(@value, ':')"/>
                  </xsl:for-each>
                </xsl:with-param>
              </xsl:call-template>
            </xsl:for-each>
          </dl>
        </header>
        <main>
          <xsl:apply-templates select="h:component/h:structuredBody/h:component/h:section">
            <xsl:with-param name="depth" select="2"/>
          </xsl:apply-templates>
        </main>
      </body>
    </html>
  </xsl:template>

  <!-- A header line: nothing when the value is empty. -->
  <xsl:template name="row">
    <xsl:param name="label"/>
    <xsl:param name="value"/>
    <xsl:if test="normalize-space($value) != ''">
      <dt><xsl:value-of select="$label"/></dt>
      <dd><xsl:value-of select="normalize-space($value)"/></dd>
    </xsl:if>
  </xsl:template>

  <xsl:template name="name">
    <xsl:param name="n"/>
    <!-- The first given name and the used family name (qualifier SP), else the first. -->
    <xsl:for-each select="$n/h:prefix[1] | $n/h:given[1]
                          | ($n/h:family[@qualifier = 'SP'] | $n/h:family[not(../h:family[@qualifier = 'SP'])])[1]">
      <xsl:if test="position() &gt; 1"><xsl:text> </xsl:text></xsl:if>
      <xsl:value-of select="normalize-space(.)"/>
    </xsl:for-each>
  </xsl:template>

  <!-- An HL7 TS (YYYYMMDD[hhmm...]) as DD/MM/YYYY [hh:mm]. -->
  <xsl:template name="date">
    <xsl:param name="ts"/>
    <xsl:if test="string-length($ts) &gt;= 8 and translate(substring($ts, 1, 8), '0123456789', '') = ''">
      <xsl:value-of select="concat(substring($ts, 7, 2), '/', substring($ts, 5, 2), '/',
                                   substring($ts, 1, 4))"/>
      <xsl:if test="string-length($ts) &gt;= 12">
        <xsl:value-of select="concat(' ', substring($ts, 9, 2), ':', substring($ts, 11, 2))"/>
      </xsl:if>
    </xsl:if>
  </xsl:template>

  <!-- Sections: a heading per depth (h2 to h6), their narrative block. -->
  <xsl:template match="h:section">
    <xsl:param name="depth"/>
    <section class="cda-section">
      <xsl:call-template name="heading">
        <xsl:with-param name="depth" select="$depth"/>
      </xsl:call-template>
      <xsl:apply-templates select="h:text"/>
      <xsl:apply-templates select="h:component/h:section">
        <xsl:with-param name="depth" select="$depth + 1"/>
      </xsl:apply-templates>
    </section>
  </xsl:template>

  <xsl:template name="heading">
    <xsl:param name="depth"/>
    <xsl:variable name="title">
      <xsl:choose>
        <xsl:when test="normalize-space(h:title) != ''"><xsl:value-of select="h:title"/></xsl:when>
        <xsl:otherwise><xsl:value-of select="h:code/@displayName"/></xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <xsl:if test="normalize-space($title) != ''">
      <xsl:choose>
        <xsl:when test="$depth = 2"><h2><xsl:value-of select="$title"/></h2></xsl:when>
        <xsl:when test="$depth = 3"><h3><xsl:value-of select="$title"/></h3></xsl:when>
        <xsl:when test="$depth = 4"><h4><xsl:value-of select="$title"/></h4></xsl:when>
        <xsl:when test="$depth = 5"><h5><xsl:value-of select="$title"/></h5></xsl:when>
        <xsl:otherwise><h6><xsl:value-of select="$title"/></h6></xsl:otherwise>
      </xsl:choose>
    </xsl:if>
  </xsl:template>

  <!-- The narrative block (CDA R2 NarrativeBlock.xsd), element by element. -->
  <xsl:template match="h:text">
    <div class="narrative"><xsl:apply-templates mode="n"/></div>
  </xsl:template>

  <xsl:template match="text()" mode="n">
    <xsl:value-of select="."/>
  </xsl:template>

  <!-- Anything not named below: its text only (an unknown or hostile element, any
       namespace, is never reproduced). -->
  <xsl:template match="*" mode="n">
    <xsl:apply-templates mode="n"/>
  </xsl:template>

  <xsl:template match="comment() | processing-instruction()" mode="n"/>

  <xsl:template match="h:paragraph" mode="n">
    <p><xsl:call-template name="anchor"/><xsl:apply-templates mode="n"/></p>
  </xsl:template>

  <xsl:template match="h:content" mode="n">
    <span>
      <xsl:call-template name="anchor"/>
      <xsl:call-template name="style"/>
      <xsl:apply-templates mode="n"/>
    </span>
  </xsl:template>

  <xsl:template match="h:br" mode="n"><br/></xsl:template>
  <xsl:template match="h:sub" mode="n"><sub><xsl:apply-templates mode="n"/></sub></xsl:template>
  <xsl:template match="h:sup" mode="n"><sup><xsl:apply-templates mode="n"/></sup></xsl:template>
  <xsl:template match="h:caption" mode="n">
    <p class="caption"><xsl:apply-templates mode="n"/></p>
  </xsl:template>
  <xsl:template match="h:table/h:caption" mode="n">
    <caption><xsl:apply-templates mode="n"/></caption>
  </xsl:template>
  <xsl:template match="h:footnote" mode="n">
    <small class="footnote"><xsl:call-template name="anchor"/><xsl:apply-templates mode="n"/></small>
  </xsl:template>
  <xsl:template match="h:footnoteRef" mode="n">
    <sup class="footnote-ref">*</sup>
  </xsl:template>

  <xsl:template match="h:list" mode="n">
    <xsl:apply-templates select="h:caption" mode="n"/>
    <xsl:choose>
      <xsl:when test="@listType = 'ordered'">
        <ol><xsl:apply-templates select="h:item" mode="n"/></ol>
      </xsl:when>
      <xsl:otherwise>
        <ul><xsl:apply-templates select="h:item" mode="n"/></ul>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>
  <xsl:template match="h:item" mode="n">
    <li><xsl:call-template name="anchor"/><xsl:apply-templates mode="n"/></li>
  </xsl:template>

  <xsl:template match="h:table" mode="n">
    <div class="table-wrap">
      <table>
        <xsl:apply-templates select="h:caption" mode="n"/>
        <xsl:apply-templates select="h:thead | h:tbody | h:tfoot | h:tr" mode="n"/>
      </table>
    </div>
  </xsl:template>
  <xsl:template match="h:thead" mode="n"><thead><xsl:apply-templates select="h:tr" mode="n"/></thead></xsl:template>
  <xsl:template match="h:tbody" mode="n"><tbody><xsl:apply-templates select="h:tr" mode="n"/></tbody></xsl:template>
  <xsl:template match="h:tfoot" mode="n"><tfoot><xsl:apply-templates select="h:tr" mode="n"/></tfoot></xsl:template>
  <xsl:template match="h:tr" mode="n">
    <tr><xsl:apply-templates select="h:th | h:td" mode="n"/></tr>
  </xsl:template>
  <xsl:template match="h:th" mode="n">
    <th><xsl:call-template name="span"/><xsl:apply-templates mode="n"/></th>
  </xsl:template>
  <xsl:template match="h:td" mode="n">
    <td><xsl:call-template name="anchor"/><xsl:call-template name="span"/><xsl:apply-templates mode="n"/></td>
  </xsl:template>

  <!-- A link: inside the document (#id) only; any other target is shown as text. -->
  <xsl:template match="h:linkHtml" mode="n">
    <xsl:choose>
      <xsl:when test="starts-with(@href, '#') and translate(substring(@href, 2),
                      'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-', '') = ''">
        <a href="{@href}"><xsl:apply-templates mode="n"/></a>
      </xsl:when>
      <xsl:otherwise>
        <span class="link"><xsl:apply-templates mode="n"/></span>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- An image the document carries (observationMedia in base64): JPEG and PNG shown as a
       data: URI (checked again by the sanitiser); anything else (a reference to a file or an
       address, another type) is named, never fetched. -->
  <xsl:template match="h:renderMultiMedia" mode="n">
    <xsl:variable name="caption" select="normalize-space(h:caption)"/>
    <xsl:for-each select="key('media', @referencedObject)[1]">
      <xsl:variable name="type" select="h:value/@mediaType"/>
      <xsl:choose>
        <xsl:when test="($type = 'image/jpeg' or $type = 'image/png')
                        and h:value/@representation = 'B64' and not(h:value/h:reference)">
          <img class="cda-image" alt="{$caption}"
               src="data:{$type};base64,{translate(h:value, ' &#9;&#10;&#13;', '')}"/>
        </xsl:when>
        <xsl:when test="$type = 'application/pdf'">
          <p class="omitted"><xsl:value-of select="$l-pdf-copy"/></p>
        </xsl:when>
        <xsl:otherwise>
          <p class="omitted"><xsl:value-of select="$l-image-omitted"/></p>
        </xsl:otherwise>
      </xsl:choose>
    </xsl:for-each>
  </xsl:template>

  <xsl:template name="anchor">
    <xsl:if test="@ID and translate(@ID,
                  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-', '') = ''">
      <xsl:attribute name="id"><xsl:value-of select="@ID"/></xsl:attribute>
    </xsl:if>
  </xsl:template>

  <xsl:template name="span">
    <xsl:if test="string(number(@colspan)) != 'NaN' and @colspan &gt; 0 and @colspan &lt; 100">
      <xsl:attribute name="colspan"><xsl:value-of select="number(@colspan)"/></xsl:attribute>
    </xsl:if>
    <xsl:if test="string(number(@rowspan)) != 'NaN' and @rowspan &gt; 0 and @rowspan &lt; 1000">
      <xsl:attribute name="rowspan"><xsl:value-of select="number(@rowspan)"/></xsl:attribute>
    </xsl:if>
  </xsl:template>

  <!-- styleCode: the CDA's few presentation codes, as our own classes. -->
  <xsl:template name="style">
    <xsl:variable name="s" select="concat(' ', @styleCode, ' ')"/>
    <xsl:variable name="c">
      <xsl:if test="contains($s, ' Bold ')"> b</xsl:if>
      <xsl:if test="contains($s, ' Italics ')"> i</xsl:if>
      <xsl:if test="contains($s, ' Underline ')"> u</xsl:if>
      <xsl:if test="contains($s, ' Emphasis ')"> i</xsl:if>
    </xsl:variable>
    <xsl:if test="normalize-space($c) != ''">
      <xsl:attribute name="class"><xsl:value-of select="normalize-space($c)"/></xsl:attribute>
    </xsl:if>
  </xsl:template>
</xsl:stylesheet>
